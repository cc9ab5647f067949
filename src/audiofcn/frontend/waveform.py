"""Raw-waveform frontend for the sample-level models (SampleCNN, M-series)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend.checks import as_audio, check_positive


def frame_waveform(x: torch.Tensor, frame_length: int, hop_length: int,
                   pad_end: bool = False) -> torch.Tensor:
    """Cut ``(..., time)`` into ``(..., n_frames, frame_length)`` windows.

    With ``pad_end`` the tail is zero-padded so every sample lands in a frame; otherwise an
    incomplete last frame is dropped.
    """
    if x.shape[-1] < frame_length and not pad_end:
        raise ValueError(f"signal of {x.shape[-1]} samples is shorter than one frame "
                         f"({frame_length})")
    if pad_end:
        t = x.shape[-1]
        n = max(1, -(-max(t - frame_length, 0) // hop_length) + 1)
        x = F.pad(x, (0, (n - 1) * hop_length + frame_length - t))
    return x.unfold(-1, frame_length, hop_length)


@dataclass
class WaveformConfig:
    sample_rate: int = 16000
    normalize: str | None = None  # None, "peak" or "rms" (per example)
    eps: float = 1e-8


class WaveformFrontend(nn.Module):
    """Raw waveform as a one-channel signal for 1-D convolutions.

    Shapes: ``(batch, time)`` or ``(batch, 1, time)`` -> ``(batch, 1, time)``.
    """

    def __init__(self, config: WaveformConfig | None = None) -> None:
        super().__init__()
        self.config = config or WaveformConfig()
        check_positive(self.config.sample_rate, "WaveformConfig.sample_rate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # A model's input layer needs more than a handful of samples: fewer is time-first input.
        x = as_audio(x, expect="(batch, time) or (batch, 1, time)",
                     time_first_below=16)
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected (batch, time) or (batch, 1, time), got {tuple(x.shape)}")
        c = self.config
        if c.normalize == "peak":
            x = x / x.abs().amax(dim=-1, keepdim=True).clamp_min(c.eps)
        elif c.normalize == "rms":
            x = x / x.pow(2).mean(dim=-1, keepdim=True).sqrt().clamp_min(c.eps)
        return x
