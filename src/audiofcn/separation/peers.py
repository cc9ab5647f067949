"""Open-Unmix (Stöter et al. 2019) as a peer, trained and evaluated by the same code.

:class:`OpenUnmixPeer` wraps ``openunmix.model.OpenUnmix`` (the ``peers`` extra; imported only
when built, and built from scratch: nothing is downloaded) behind the separator interface: linear
magnitude ``(batch, freq, frames)`` in, and :meth:`OpenUnmixPeer.predict_mask` gives the mask
``min(|V̂| / |X|, 1)``, so it goes through exactly the inference pipeline of our models (mixture
phase, complementary accompaniment, optional Wiener). Its training objective is Open-Unmix's
own: MSE between the estimated and true vocal magnitudes (:class:`VocalMagnitudeTask`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.separation.training import _SpectraMixin


def _reduced_stft() -> STFTConfig:
    return STFTConfig(n_fft=1024, hop_length=256)


@dataclass
class OpenUnmixPeerConfig:
    sample_rate: int = 16000
    stft: STFTConfig = field(default_factory=_reduced_stft)
    hidden_size: int = 512  # Open-Unmix default
    nb_layers: int = 3
    max_bin: int | None = None  # None: all bins (Open-Unmix crops to ~16 kHz at 44.1 kHz)


class OpenUnmixPeer(PretrainedModel):
    """Open-Unmix's vocals model: ``(batch, freq, frames)`` mixture magnitude -> estimated vocal
    magnitude, same shape."""

    model_name = "separator_openunmix_peer"
    config_class = OpenUnmixPeerConfig

    def __init__(self, config: OpenUnmixPeerConfig | None = None) -> None:
        config = config or OpenUnmixPeerConfig()
        super().__init__(config)
        from openunmix.model import OpenUnmix

        self.n_freqs = config.stft.n_freqs
        self.patch_frames = None
        self.net = OpenUnmix(nb_bins=self.n_freqs, nb_channels=1, hidden_size=config.hidden_size,
                             nb_layers=config.nb_layers, max_bin=config.max_bin)

    def set_input_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Open-Unmix standardises its input with per-bin statistics of the training set's
        mixture magnitudes (``(freq,)`` each), as its own training script does."""
        n = self.net.input_mean.numel()
        with torch.no_grad():
            self.net.input_mean.copy_(-mean[:n])
            self.net.input_scale.copy_(1.0 / std[:n].clamp_min(1e-4))

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """``(batch, freq, frames)`` -> non-negative vocal magnitude ``(batch, freq, frames)``."""
        return self.net(mag.unsqueeze(1))[:, 0]

    @torch.no_grad()
    def predict_mask(self, mag: torch.Tensor, **_: object) -> torch.Tensor:
        """``(batch, freq, frames)`` -> ``min(|V̂| / |X|, 1)``, same shape."""
        return (self(mag) / mag.clamp_min(1e-8)).clamp(0.0, 1.0)


class VocalMagnitudeTask(_SpectraMixin):
    """Open-Unmix's objective: MSE between estimated and true vocal magnitude."""

    def _loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        mix, voice, _ = self.spectra(model, batch)
        return F.mse_loss(model(mix), voice)

    def training_step(self, model: nn.Module,
                      batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        return self._loss(model, batch), {}

    def validation_step(self, model: nn.Module, batch: torch.Tensor) -> dict[str, float]:
        return {"loss": float(self._loss(model, batch))}


__all__ = ["OpenUnmixPeer", "OpenUnmixPeerConfig", "VocalMagnitudeTask"]
