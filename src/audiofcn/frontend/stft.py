"""STFT, inverse STFT and magnitude/power spectrograms."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audiofcn.frontend.checks import as_audio


@dataclass
class STFTConfig:
    """Short-time Fourier transform parameters (librosa's defaults for centring and padding)."""

    n_fft: int = 512
    hop_length: int = 256
    win_length: int | None = None  # None: equal to n_fft
    window: str = "hann"  # "hann" (periodic, as librosa/scipy) or "sqrt_hann"
    center: bool = True
    pad_mode: str = "constant"  # librosa >= 0.10 pads with zeros

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def window_length(self) -> int:
        return self.win_length or self.n_fft


def check_stft_config(cfg: STFTConfig) -> None:
    """ValueError for sizes no transform can use."""
    for what, v in (("n_fft", cfg.n_fft), ("hop_length", cfg.hop_length),
                    ("window_length", cfg.window_length)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"STFTConfig.{what} must be a positive integer, got {v!r}")
    if cfg.window_length > cfg.n_fft:
        raise ValueError(f"STFTConfig.win_length must not exceed n_fft ({cfg.n_fft}), got "
                         f"{cfg.window_length}")


def make_window(cfg: STFTConfig) -> torch.Tensor:
    check_stft_config(cfg)
    win = torch.hann_window(cfg.window_length, periodic=True)
    if cfg.window == "sqrt_hann":
        win = win.sqrt()
    elif cfg.window != "hann":
        raise ValueError(f"unknown window {cfg.window!r} (use 'hann' or 'sqrt_hann')")
    return win


def _flatten(x: torch.Tensor) -> tuple[torch.Tensor, torch.Size]:
    lead = x.shape[:-1]
    return x.reshape(-1, x.shape[-1]), lead


class STFT(nn.Module):
    """Complex STFT.

    Shapes: ``(..., time)`` -> complex ``(..., n_freqs, frames)`` with
    ``frames = 1 + time // hop`` when ``center`` (as librosa).
    """

    def __init__(self, config: STFTConfig | None = None) -> None:
        super().__init__()
        self.config = config or STFTConfig()
        self.register_buffer("window", make_window(self.config), persistent=False)

    def forward(self, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        """``check=False`` skips the input checks (a caller that already made them)."""
        c = self.config
        if check:
            # A (time, channels) signal has a last axis shorter than half a frame.
            x = as_audio(x, time_first_below=c.n_fft // 2 + 1)
        flat, lead = _flatten(x)
        spec = torch.stft(flat, c.n_fft, c.hop_length, c.window_length, self.window,
                          center=c.center, pad_mode=c.pad_mode, return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:])


class ISTFT(nn.Module):
    """Inverse of :class:`STFT` (weighted overlap-add).

    Shapes: complex ``(..., n_freqs, frames)`` -> ``(..., length)``.
    """

    def __init__(self, config: STFTConfig | None = None) -> None:
        super().__init__()
        self.config = config or STFTConfig()
        self.register_buffer("window", make_window(self.config), persistent=False)

    def forward(self, spec: torch.Tensor, length: int | None = None) -> torch.Tensor:
        c = self.config
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, *spec.shape[-2:])
        y = torch.istft(flat, c.n_fft, c.hop_length, c.window_length, self.window,
                        center=c.center, length=length)
        return y.reshape(*lead, y.shape[-1])


def power_from_complex(spec: torch.Tensor) -> torch.Tensor:
    """|X|^2 without the sqrt-then-square of ``abs().pow(2)`` (faster, same value)."""
    ri = torch.view_as_real(spec)
    return ri[..., 0].square() + ri[..., 1].square()


class Spectrogram(nn.Module):
    """Magnitude (``power=1``) or power (``power=2``) spectrogram.

    Shapes: ``(..., time)`` -> ``(..., n_freqs, frames)``.
    """

    def __init__(self, config: STFTConfig | None = None, power: float = 2.0) -> None:
        super().__init__()
        self.stft = STFT(config)
        self.power = power

    @property
    def config(self) -> STFTConfig:
        return self.stft.config

    def forward(self, x: torch.Tensor, check: bool = True) -> torch.Tensor:
        p = power_from_complex(self.stft(x, check=check))
        if self.power == 2.0:
            return p
        return p.pow(self.power / 2.0)
