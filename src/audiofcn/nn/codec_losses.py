"""SoundStream training losses: multi-scale mel reconstruction, hinge GAN, feature matching.

The mel spectrograms come from :mod:`audiofcn.frontend` (one frontend for the whole package).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import MelConfig, MelSpectrogram, STFTConfig


class MultiScaleMelLoss(nn.Module):
    """``sum_s  L1(S_s(x), S_s(y)) + alpha_s * L2(log S_s(x), log S_s(y))`` over window sizes
    ``s = 2^6 ... 2^11`` (hop ``s/4``, 64 mel bins), ``alpha_s = sqrt(s/2)``.

    ``S = sqrt(mel power + eps)``: the mel bands are computed on the power spectrogram and the
    square root taken after the (clamped) sum. A magnitude spectrogram ``|X| = sqrt(|X|^2)``
    has an infinite gradient wherever a bin is exactly (or underflows to) zero, which blew up a
    CPU training run; the band-wise square root is finite everywhere.

    The L1/L2 terms are means over bins and frames (not sums), so the loss does not depend on the
    clip length; the paper's relative weighting between scales (``alpha_s``) is kept.

    ``l1_weight`` scales the linear-magnitude term (paper: 1). With our area-normalised mel
    filters the magnitudes of speech at -20 dBFS are ~0.01-1, so at weight 1 the L1 term is
    about 0.1 % of the loss and the log term, which weighs a -60 dB bin like a 0 dB one, is all
    the generator learns from; a weight near 100 puts the loud (harmonic) bins back on par.

    Shapes: ``x, y`` ``(batch, T)`` or ``(batch, 1, T)`` -> scalar.
    """

    def __init__(self, sample_rate: int, n_mels: int = 64,
                 scales: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048),
                 eps: float = 1e-8, l1_weight: float = 1.0) -> None:
        super().__init__()
        self.scales, self.eps, self.l1_weight = scales, eps, l1_weight
        with warnings.catch_warnings():
            # With 64 mels on a 64-point FFT some filters are empty; that is by design (paper).
            warnings.simplefilter("ignore", UserWarning)
            self.mels = nn.ModuleList(
                MelSpectrogram(MelConfig(sample_rate, STFTConfig(n_fft=s, hop_length=s // 4),
                                         n_mels=n_mels, power=2.0))
                for s in scales)

    def per_scale(self, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        x, y = x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
        out = []
        for s, mel in zip(self.scales, self.mels, strict=True):
            mx, my = (mel(x) + self.eps).sqrt(), (mel(y) + self.eps).sqrt()
            l1 = (mx - my).abs().mean()
            l2 = (mx.log() - my.log()).square().mean().add(1e-12).sqrt()
            out.append(self.l1_weight * l1 + math.sqrt(s / 2) * l2)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.per_scale(x, y)).sum()


def hinge_d_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """Discriminator hinge loss averaged over discriminators: ``relu(1-D(x)) + relu(1+D(G))``."""
    terms = [F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True)]
    return torch.stack(terms).mean()


def hinge_g_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """Generator adversarial loss: ``mean relu(1 - D(G(x)))`` averaged over discriminators."""
    return torch.stack([F.relu(1 - f).mean() for f in fake]).mean()


def feature_matching_loss(real_feats: list[list[torch.Tensor]],
                          fake_feats: list[list[torch.Tensor]]) -> torch.Tensor:
    """Mean over discriminators and layers of ``|D_l(x) - D_l(G)|_1 / mean|D_l(x)|``."""
    terms = []
    for rf, ff in zip(real_feats, fake_feats, strict=True):
        for r, f in zip(rf, ff, strict=True):
            r = r.detach()
            terms.append((r - f).abs().mean() / r.abs().mean().clamp_min(1e-5))
    return torch.stack(terms).mean()
