"""Singing-voice separators that predict a per-bin vocal mask from a magnitude spectrogram.

* :class:`PatchSeparator` — Lin et al. (2018): a CNN over a patch of ``context_frames`` frames
  × all frequency bins of *linear* magnitude; 3 (time) × 12 (freq) convolutions with channels
  32, 16, pool (1, 12), 64, 32, pool (1, 12); FC 2048, FC 512; one logit per bin of the patch.
  Trained on the ideal binary mask with label smoothing and per-pixel sigmoid cross-entropy,
  after an autoencoder pretraining stage. Inference slides one frame at a time and keeps the
  centre frame of each patch (``patch_hop`` > 1 trades that for speed).
* :class:`FCNSeparator` — the same idea made fully convolutional: a small U-Net over the whole
  spectrogram (any number of frames), optional scSE blocks, one logit per bin and frame. A
  whole chunk of a track is one forward pass: the fast path.

Both take linear magnitude ``(batch, freq, frames)`` from :mod:`audiofcn.frontend` (the model
config carries the :class:`~audiofcn.frontend.STFTConfig` it was trained with) and return logits
of the same layout; :meth:`predict_mask` returns the soft vocal mask in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.se import ChannelSpatialSE2d


def _reduced_stft() -> STFTConfig:
    return STFTConfig(n_fft=1024, hop_length=256)


class _InputTransform(nn.Module):
    """Magnitude -> network input: optional ``log1p`` compression, then a learned global
    standardisation (a one-channel batch norm), because raw STFT magnitudes have a scale that
    depends on the FFT size and the recording level."""

    def __init__(self, log_input: bool, input_norm: bool) -> None:
        super().__init__()
        self.log_input = log_input
        self.norm: nn.Module = nn.BatchNorm2d(1) if input_norm else nn.Identity()

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """``(batch, freq, frames)`` -> ``(batch, 1, freq, frames)``."""
        if not mag.is_floating_point() or mag.is_complex():
            raise ValueError(f"expected float magnitudes (batch, freq, frames) (e.g. "
                             f"STFT(...)(audio).abs()), got {mag.dtype}")
        x = torch.log1p(mag) if self.log_input else mag
        return self.norm(x.unsqueeze(1))


# ------------------------------------------------------------------------------------------------
# Paper CNN over patches
# ------------------------------------------------------------------------------------------------
@dataclass
class PatchSeparatorConfig:
    """Defaults are the reduced configuration used by the recipes on this CPU (16 kHz, FFT 1024,
    513 bins, ~5.3 M parameters); :meth:`paper` gives Lin et al.'s (22.05 kHz, FFT 4096,
    2049 bins, ~18.8 M parameters)."""

    sample_rate: int = 16000
    stft: STFTConfig = field(default_factory=_reduced_stft)
    context_frames: int = 9  # patch width in frames; the centre frame is kept at inference
    conv_channels: tuple[int, ...] = (32, 16, 64, 32)
    pool_every: int = 2  # a (1, pool_freq) max-pool after every `pool_every` convolutions
    kernel_time: int = 3
    kernel_freq: int = 12
    pool_freq: int = 12
    hidden: tuple[int, ...] = (2048, 512)
    dropout: float = 0.25
    batch_norm: bool = True  # not in the paper; makes short CPU budgets train reliably
    log_input: bool = False  # the paper feeds linear magnitude
    input_norm: bool = True

    @classmethod
    def paper(cls) -> PatchSeparatorConfig:
        """Lin et al.: Hann window 1024, FFT 4096, hop 256 at 22.05 kHz -> 2049 bins."""
        return cls(sample_rate=22050, stft=STFTConfig(n_fft=4096, hop_length=256,
                                                       win_length=1024))


class PatchSeparator(PretrainedModel):
    """Lin et al.'s patch CNN: ``(batch, freq, context_frames)`` magnitude -> logits of the same
    shape, one per time-frequency bin of the patch."""

    model_name = "separator_patch_cnn"
    config_class = PatchSeparatorConfig

    def __init__(self, config: PatchSeparatorConfig | None = None) -> None:
        config = config or PatchSeparatorConfig()
        super().__init__(config)
        c = config
        self.n_freqs = c.stft.n_freqs
        self.patch_frames = c.context_frames
        self.input = _InputTransform(c.log_input, c.input_norm)
        layers: list[nn.Module] = []
        in_ch, freqs = 1, self.n_freqs
        for i, ch in enumerate(c.conv_channels):
            # Input is laid out (batch, 1, freq, time): the kernel is (freq, time).
            # "same" padding done explicitly: the 12-wide kernel needs an asymmetric pad.
            pt, pf = (c.kernel_time - 1) // 2, (c.kernel_freq - 1) // 2
            layers.append(nn.ZeroPad2d((pt, c.kernel_time - 1 - pt, pf, c.kernel_freq - 1 - pf)))
            layers.append(nn.Conv2d(in_ch, ch, (c.kernel_freq, c.kernel_time),
                                    bias=not c.batch_norm))
            if c.batch_norm:
                layers.append(nn.BatchNorm2d(ch))
            layers.append(nn.ReLU())
            if (i + 1) % c.pool_every == 0:
                layers.append(nn.MaxPool2d((c.pool_freq, 1)))
                freqs //= c.pool_freq
            in_ch = ch
        if freqs < 1:
            raise ValueError(f"{self.n_freqs} bins are too few for the pooling of this config")
        self.convs = nn.Sequential(*layers)
        fcs: list[nn.Module] = []
        width = in_ch * freqs * c.context_frames
        for h in c.hidden:
            fcs += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(c.dropout)]
            width = h
        fcs.append(nn.Linear(width, self.n_freqs * c.context_frames))
        self.fcs = nn.Sequential(*fcs)

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """Linear magnitude patches ``(batch, freq, context_frames)`` -> logits, same shape."""
        if mag.shape[-2:] != (self.n_freqs, self.patch_frames):
            raise ValueError(f"expected patches (batch, {self.n_freqs}, {self.patch_frames}), "
                             f"got {tuple(mag.shape)}")
        h = self.convs(self.input(mag))
        out = self.fcs(h.flatten(1))
        return out.view(mag.shape[0], self.n_freqs, self.patch_frames)

    @torch.no_grad()
    def predict_mask(self, mag: torch.Tensor, patch_hop: int = 1,
                     batch_patches: int = 256) -> torch.Tensor:
        """Soft vocal mask for a whole spectrogram by sliding patches.

        ``patch_hop=1`` is the paper: one patch per frame, centred on it, keep the centre column.
        ``patch_hop=context_frames`` tiles the spectrogram with disjoint patches and keeps every
        column (``context_frames`` times faster, slightly worse at the patch edges). Patches are
        run ``batch_patches`` at a time, so memory does not grow with the number of frames.

        Shapes: ``(batch, freq, frames)`` -> ``(batch, freq, frames)`` in [0, 1].
        """
        k, half = self.patch_frames, self.patch_frames // 2
        b, f, t = mag.shape
        if patch_hop == 1:
            padded = F.pad(mag, (half, half))
            starts = torch.arange(t)
            keep = slice(half, half + 1)
        elif 1 < patch_hop <= k:
            if patch_hop != k:
                raise ValueError(f"patch_hop must be 1 or {k} (context_frames)")
            pad_right = (-t) % k
            padded = F.pad(mag, (0, pad_right))
            starts = torch.arange(0, t + pad_right, k)
            keep = slice(0, k)
        else:
            raise ValueError(f"patch_hop must be 1 or {k}, got {patch_hop}")
        # (batch, freq, n_patches, k) view -> patch batches of (chunk, freq, k), copied lazily.
        windows = padded.unfold(-1, k, patch_hop if patch_hop > 1 else 1)
        rows: list[torch.Tensor] = []
        for i in range(b):
            cols = [torch.sigmoid(self(windows[i, :, j:j + batch_patches].permute(1, 0, 2)
                                       .contiguous()))[..., keep]
                    for j in range(0, len(starts), batch_patches)]
            rows.append(torch.cat(cols).permute(1, 0, 2).reshape(f, -1))  # (freq, n * kept)
        out = torch.stack(rows)
        return out[..., :t]


# ------------------------------------------------------------------------------------------------
# Fully convolutional variant
# ------------------------------------------------------------------------------------------------
@dataclass
class FCNSeparatorConfig:
    """A U-Net over the whole magnitude spectrogram; ``channels[i]`` at 1/2^i resolution."""

    sample_rate: int = 16000
    stft: STFTConfig = field(default_factory=_reduced_stft)
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    kernel: tuple[int, int] = (3, 3)  # (freq, time)
    se: bool = True  # scSE (Roy et al.) after each encoder/decoder block
    # (freq, time) stride of a strided input conv before the U-Net and a transposed conv after
    # it: (2, 2) runs the whole U-Net at a quarter of the bins x frames (the fast path).
    stem_stride: tuple[int, int] = (1, 1)
    log_input: bool = True
    input_norm: bool = True
    dropout: float = 0.1  # on the bottleneck
    # With a strided stem: channels of a cheap full-resolution branch (one 3x3 conv on the
    # input) concatenated with the up-sampled U-Net output before a 3x3 head, so the mask can
    # follow single bins and frames again (0 = none: the 1x1 head on the U-Net output only).
    refine_channels: int = 0
    # A learned per-frequency-bin affine on the (log) input, like Open-Unmix's per-bin
    # standardisation (after the global batch norm).
    freq_norm: bool = False


class _Block(nn.Sequential):
    """Two ``conv → BN → ReLU`` layers (+ optional scSE). Shapes keep (freq, time)."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int], se: bool) -> None:
        pad = (kernel[0] // 2, kernel[1] // 2)
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU(),
            nn.Conv2d(c_out, c_out, kernel, padding=pad, bias=False), nn.BatchNorm2d(c_out),
            nn.ReLU()]
        if se:
            layers.append(ChannelSpatialSE2d(c_out))
        super().__init__(*layers)


class FCNSeparator(PretrainedModel):
    """Fully convolutional separator: ``(batch, freq, frames)`` magnitude -> logits, same shape,
    for any number of frames (inputs are padded inside, see :attr:`multiple`)."""

    model_name = "separator_fcn"
    config_class = FCNSeparatorConfig

    def __init__(self, config: FCNSeparatorConfig | None = None) -> None:
        config = config or FCNSeparatorConfig()
        super().__init__(config)
        c = config
        self.n_freqs = c.stft.n_freqs
        self.patch_frames = None  # whole spectrograms, not patches
        self.input = _InputTransform(c.log_input, c.input_norm)
        self.freq_scale = self.freq_shift = None
        if c.freq_norm:
            self.freq_scale = nn.Parameter(torch.ones(self.n_freqs, 1))
            self.freq_shift = nn.Parameter(torch.zeros(self.n_freqs, 1))
        ch = list(c.channels)
        self.down = nn.ModuleList()
        c_in = 1
        sf, st = c.stem_stride
        self.stem: nn.Module = nn.Identity()
        self.unstem: nn.Module = nn.Identity()
        if (sf, st) != (1, 1):
            self.stem = nn.Sequential(
                nn.Conv2d(1, ch[0], (2 * sf + 1, 2 * st + 1), stride=(sf, st), padding=(sf, st),
                          bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU())
            self.unstem = nn.Sequential(
                nn.ConvTranspose2d(ch[0], ch[0], (sf, st), stride=(sf, st)), nn.ReLU())
            c_in = ch[0]
        for c_out in ch:
            self.down.append(_Block(c_in, c_out, c.kernel, c.se))
            c_in = c_out
        self.pool = nn.MaxPool2d(2)
        self.dropout = nn.Dropout2d(c.dropout)
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for hi, lo in zip(reversed(ch[1:]), reversed(ch[:-1]), strict=True):
            self.upsample.append(nn.ConvTranspose2d(hi, lo, 2, stride=2))
            self.up.append(_Block(2 * lo, lo, c.kernel, c.se))
        self.refine: nn.Module | None = None
        if c.refine_channels:
            if (sf, st) == (1, 1):
                raise ValueError("refine_channels needs a strided stem (stem_stride != (1, 1))")
            r = c.refine_channels
            self.refine = nn.Sequential(nn.Conv2d(1, r, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(r), nn.ReLU())
            self.head = nn.Conv2d(ch[0] + r, 1, 3, padding=1)
        else:
            self.head = nn.Conv2d(ch[0], 1, 1)
        # Channels-last is ~1.5x faster for these few-channel convs on CPU (oneDNN); weights are
        # saved contiguous by serialize(), so checkpoints do not depend on it.
        self.to(memory_format=torch.channels_last)

    @property
    def multiple(self) -> tuple[int, int]:
        """Inputs are padded to multiples of this (freq, frames) inside :meth:`forward`."""
        sf, st = self.config.stem_stride
        levels = 2 ** (len(self.config.channels) - 1)
        return levels * sf, levels * st

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """Linear magnitude ``(batch, freq, frames)`` -> mask logits ``(batch, freq, frames)``."""
        if mag.dim() != 3 or mag.shape[1] != self.n_freqs:
            raise ValueError(f"expected (batch, {self.n_freqs}, frames), got {tuple(mag.shape)}")
        f, t = mag.shape[-2:]
        mf, mt = self.multiple
        fp, tp = math.ceil(f / mf) * mf, math.ceil(t / mt) * mt
        if self.freq_scale is not None:
            x = self.input(mag)
            x = x * self.freq_scale + self.freq_shift
            x = F.pad(x, (0, tp - t, 0, fp - f))
        else:
            x = self.input(F.pad(mag, (0, tp - t, 0, fp - f)))
        x = x.contiguous(memory_format=torch.channels_last)
        full = x
        x = self.stem(x)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = self.pool(x)
            x = block(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for upsample, block in zip(self.upsample, self.up, strict=True):
            x = block(torch.cat([upsample(x), skips.pop()], dim=1))
        x = self.unstem(x)
        if self.refine is not None:
            x = torch.cat([x, self.refine(full)], dim=1)
        return self.head(x)[:, 0, :f, :t]

    @torch.no_grad()
    def predict_mask(self, mag: torch.Tensor, **_: object) -> torch.Tensor:
        """Soft vocal mask in one pass. ``(batch, freq, frames)`` -> same, in [0, 1]."""
        return torch.sigmoid(self(mag))


SEPARATOR_CLASSES: dict[str, type[PretrainedModel]] = {
    PatchSeparator.model_name: PatchSeparator,
    FCNSeparator.model_name: FCNSeparator,
}

__all__ = ["FCNSeparator", "FCNSeparatorConfig", "PatchSeparator", "PatchSeparatorConfig",
           "SEPARATOR_CLASSES"]
