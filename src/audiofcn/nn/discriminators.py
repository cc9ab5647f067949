"""SoundStream discriminators: multi-scale waveform (MelGAN-style) and complex STFT.

Each discriminator returns ``(logits, features)``; features feed the feature-matching loss.
Channel widths are configurable: the defaults are smaller than the paper's so that CPU training
is possible; the structure (3 waveform scales, STFT with W=1024/H=256, 2-D residual blocks) is the
paper's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import STFT, STFTConfig


class WaveDiscriminator(nn.Module):
    """Strided grouped 1-D convs over the waveform (MelGAN).

    Shapes: ``(batch, 1, T)`` -> logits ``(batch, 1, T')`` and a list of feature maps.
    """

    def __init__(self, channels: int = 16, max_channels: int = 256, downsamples: int = 3,
                 groups: int = 4) -> None:
        super().__init__()
        layers = [nn.Conv1d(1, channels, 15, padding=7)]
        c = channels
        for _ in range(downsamples):
            c_out = min(c * 4, max_channels)
            layers.append(nn.Conv1d(c, c_out, 41, stride=4, padding=20,
                                    groups=min(groups, c)))
            c = c_out
        layers.append(nn.Conv1d(c, c, 5, padding=2))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Conv1d(c, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            feats.append(x)
        return self.out(x), feats


class MultiScaleWaveDiscriminator(nn.Module):
    """The waveform discriminator at 3 resolutions: original, 2x and 4x average-pooled."""

    def __init__(self, scales: int = 3, channels: int = 16, max_channels: int = 256) -> None:
        super().__init__()
        self.discs = nn.ModuleList(WaveDiscriminator(channels, max_channels)
                                   for _ in range(scales))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = [], []
        for i, d in enumerate(self.discs):
            if i:
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            lg, ft = d(x)
            logits.append(lg)
            feats.append(ft)
        return logits, feats


class _ResBlock2d(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_in, 3, padding=1)
        kt, kf = stride[0] + 2, stride[1] + 2
        self.conv2 = nn.Conv2d(c_in, c_out, (kt, kf), stride=stride, padding=(1, 1))
        self.skip = nn.Conv2d(c_in, c_out, (stride[0], stride[1]), stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.leaky_relu(self.conv1(x), 0.2))
        s = self.skip(x)
        t, f = min(y.shape[-2], s.shape[-2]), min(y.shape[-1], s.shape[-1])
        return F.leaky_relu(y[..., :t, :f] + s[..., :t, :f], 0.2)


class STFTDiscriminator(nn.Module):
    """2-D residual conv net on the complex STFT (real and imaginary parts as 2 channels).

    Shapes: ``(batch, 1, T)`` -> logits ``(batch, 1, frames', freqs')`` and feature maps.
    """

    def __init__(self, channels: int = 16, n_fft: int = 1024, hop_length: int = 256,
                 blocks: int = 4) -> None:
        super().__init__()
        self.stft = STFT(STFTConfig(n_fft=n_fft, hop_length=hop_length))
        self.first = nn.Conv2d(2, channels, 7, padding=3)
        strides = [(1, 2), (2, 2), (1, 2), (2, 2), (1, 2), (2, 2)][:blocks]
        mults = [1, 2, 4, 4, 8, 8, 8][: blocks + 1]
        self.blocks = nn.ModuleList(
            _ResBlock2d(channels * mults[i], channels * mults[i + 1], strides[i])
            for i in range(blocks))
        self.out = nn.Conv2d(channels * mults[blocks], 1, (1, 3), padding=(0, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        spec = self.stft(x[:, 0])  # (B, F, frames) complex
        z = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, F)
        feats = [F.leaky_relu(self.first(z), 0.2)]
        for b in self.blocks:
            feats.append(b(feats[-1]))
        return self.out(feats[-1]), feats


class SoundStreamDiscriminator(nn.Module):
    """All discriminators together: returns logits and features of every one of them."""

    def __init__(self, wave_channels: int = 16, stft_channels: int = 16,
                 sample_rate: int = 16000) -> None:
        super().__init__()
        self.wave = MultiScaleWaveDiscriminator(channels=wave_channels)
        # Paper: W=1024, H=256 at 24 kHz; the same window duration at other rates.
        n_fft = 1 << round(torch.log2(torch.tensor(1024 * sample_rate / 24000)).item())
        self.stft = STFTDiscriminator(stft_channels, n_fft=n_fft, hop_length=n_fft // 4)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        logits, feats = self.wave(x)
        lg, ft = self.stft(x)
        return logits + [lg], feats + [ft]
