"""Training pieces for the separators: the ideal binary mask, stem datasets and the tasks that
:class:`audiofcn.train.Trainer` runs.

* :func:`ideal_binary_mask` / :func:`smooth_labels` — Lin et al.'s target: 1 where the voice is
  louder than the accompaniment, smoothed to 0.02 / 0.98.
* :class:`StemSegments` — random (or fixed, for validation) excerpts of ``(voice,
  accompaniment)`` waveform pairs; the mixture is their sum, so any stem dataset works.
* :class:`IBMMaskTask` — per-pixel sigmoid cross-entropy against the smoothed IBM, on whole
  spectrograms (FCN) or on random patches (the paper CNN).
* :class:`MaskedVocalAETask` — the autoencoder pretraining stage: the network reconstructs the
  IBM-masked vocal spectrogram it is given (log-compressed, MSE), run through the same trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from audiofcn.frontend import STFT, STFTConfig


def ideal_binary_mask(voice_mag: torch.Tensor, accompaniment_mag: torch.Tensor) -> torch.Tensor:
    """``|V| > |A|`` as float (1 = vocal bin). Shapes: any, equal -> same."""
    return (voice_mag > accompaniment_mag).to(voice_mag.dtype)


def smooth_labels(mask: torch.Tensor, smoothing: float = 0.02) -> torch.Tensor:
    """Map {0, 1} to {smoothing, 1 - smoothing} (Lin et al.: 0.02 / 0.98)."""
    return mask * (1.0 - 2.0 * smoothing) + smoothing


class StemSegments(Dataset):
    """Excerpts of ``segment`` samples from ``(voice, accompaniment)`` pairs of 1-D arrays.

    Training (``fixed=False``): each item picks a clip with probability proportional to its
    length and a random offset from torch's RNG (so the trainer's seed makes runs repeatable);
    ``length`` items make one epoch. Validation (``fixed=True``): the same excerpts every time.
    Items are float32 ``(2, segment)``: row 0 voice, row 1 accompaniment (mixture = sum).
    """

    def __init__(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]], segment: int,
                 length: int, fixed: bool = False, seed: int = 0) -> None:
        if not pairs:
            raise ValueError("no (voice, accompaniment) pairs given")
        self.pairs = [(np.asarray(v, np.float32), np.asarray(a, np.float32)) for v, a in pairs]
        for v, a in self.pairs:
            if v.shape != a.shape or v.ndim != 1:
                raise ValueError(f"voice/accompaniment shapes differ or are not 1-D: "
                                 f"{v.shape} vs {a.shape}")
        self.segment, self.length, self.fixed, self.seed = segment, length, fixed, seed
        lengths = np.array([len(v) for v, _ in self.pairs], dtype=np.float64)
        self.weights = torch.from_numpy(lengths / lengths.sum())

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 7919 + index) if self.fixed else None
        clip = int(torch.multinomial(self.weights, 1, generator=gen))
        voice, acc = self.pairs[clip]
        room = len(voice) - self.segment
        start = int(torch.randint(0, room + 1, (1,), generator=gen)) if room > 0 else 0
        out = np.zeros((2, self.segment), dtype=np.float32)
        n = min(self.segment, len(voice))
        out[0, :n], out[1, :n] = voice[start:start + n], acc[start:start + n]
        return torch.from_numpy(out)


class _SpectraMixin:
    """Turns a ``(batch, 2, time)`` stem batch into magnitudes with the shared frontend."""

    def _stft(self, cfg: STFTConfig, device: torch.device) -> STFT:
        stft = getattr(self, "_stft_module", None)
        if stft is None or stft.config != cfg:
            stft = STFT(cfg)
            self._stft_module = stft
        return stft.to(device)

    def spectra(self, model: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(batch, 2, time)`` -> mixture, voice, accompaniment magnitudes ``(batch, F, T)``."""
        core = getattr(model, "module", model)  # unwrap DDP
        stft = self._stft(core.config.stft, batch.device)
        voice, acc = batch[:, 0], batch[:, 1]
        spec = stft(torch.stack([voice + acc, voice, acc], dim=1))
        return spec[:, 0].abs(), spec[:, 1].abs(), spec[:, 2].abs()


def random_patches(tensors: Sequence[torch.Tensor], width: int, per_item: int,
                   generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """Cut the same ``per_item`` random ``width``-frame patches out of each ``(B, F, T)`` tensor.

    Returns tensors of shape ``(B * per_item, F, width)``.
    """
    b, _, t = tensors[0].shape
    if t < width:
        raise ValueError(f"segments of {t} frames are shorter than the {width}-frame patch")
    starts = torch.randint(0, t - width + 1, (b, per_item), generator=generator)
    idx = starts.unsqueeze(-1) + torch.arange(width)  # (B, P, width)
    out = []
    for x in tensors:
        g = x.unsqueeze(1).expand(-1, per_item, -1, -1)  # (B, P, F, T)
        gi = idx.to(x.device).unsqueeze(2).expand(-1, -1, x.shape[1], -1)
        out.append(torch.gather(g, 3, gi).reshape(b * per_item, x.shape[1], width))
    return out


class IBMMaskTask(_SpectraMixin):
    """Per-pixel sigmoid cross-entropy against the label-smoothed ideal binary mask.

    ``patch_frames``: cut ``patches_per_item`` random patches of that width from each excerpt
    (the paper CNN); ``None`` trains on the whole excerpt's spectrogram (the FCN).
    ``recon_weight`` > 0 adds a magnitude reconstruction term: the L1 distance between the
    soft-masked mixture ``σ(logits) ⊙ |X|`` and the vocal magnitude ``|V|``, divided by the
    batch's mean ``|X|`` (so it does not depend on the recording level), times the weight.
    """

    def __init__(self, label_smoothing: float = 0.02, patch_frames: int | None = None,
                 patches_per_item: int = 8, recon_weight: float = 0.0) -> None:
        if recon_weight < 0:
            raise ValueError(f"recon_weight must be >= 0, got {recon_weight}")
        self.label_smoothing = label_smoothing
        self.patch_frames = patch_frames
        self.patches_per_item = patches_per_item
        self.recon_weight = recon_weight

    def _loss(self, model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        mix, voice, acc = self.spectra(model, batch)
        if self.patch_frames:
            mix, voice, acc = random_patches([mix, voice, acc], self.patch_frames,
                                             self.patches_per_item)
        ibm = ideal_binary_mask(voice, acc)
        logits = model(mix)
        loss = F.binary_cross_entropy_with_logits(logits, smooth_labels(ibm, self.label_smoothing))
        out = {}
        if self.recon_weight:
            recon = (torch.sigmoid(logits) * mix - voice).abs().mean() / mix.mean().clamp_min(1e-8)
            out["recon"] = recon.detach()
            loss = loss + self.recon_weight * recon
        with torch.no_grad():
            accuracy = ((logits > 0).to(ibm.dtype) == ibm).float().mean()
        return {"loss": loss, "pixel_accuracy": accuracy, **out}

    def training_step(self, model: nn.Module,
                      batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        out = self._loss(model, batch)
        return out["loss"], {"pixel_accuracy": float(out["pixel_accuracy"])}

    def validation_step(self, model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
        g = torch.random.get_rng_state()
        torch.manual_seed(0)  # the same validation patches every epoch
        try:
            with torch.no_grad():
                return {k: float(v) for k, v in self._loss(model, batch).items()}
        finally:
            torch.random.set_rng_state(g)


class MaskedVocalAETask(IBMMaskTask):
    """Autoencoder pretraining: input = IBM ⊙ |mixture| (the IBM-masked vocal spectrogram),
    target = ``log1p`` of that input, MSE on the network's raw outputs. The log keeps the loss
    from being dominated by the few loudest bins of a linear magnitude."""

    def _loss(self, model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        mix, voice, acc = self.spectra(model, batch)
        if self.patch_frames:
            mix, voice, acc = random_patches([mix, voice, acc], self.patch_frames,
                                             self.patches_per_item)
        masked = ideal_binary_mask(voice, acc) * mix
        loss = F.mse_loss(model(masked), torch.log1p(masked))
        return {"loss": loss}

    def training_step(self, model: nn.Module,
                      batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self._loss(model, batch)["loss"], {}


__all__ = ["IBMMaskTask", "MaskedVocalAETask", "StemSegments", "ideal_binary_mask",
           "random_patches", "smooth_labels"]
