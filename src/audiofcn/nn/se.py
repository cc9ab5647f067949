"""Squeeze-and-excitation blocks.

* :class:`ChannelSE` — channel excitation for 1-D or 2-D feature maps: global average pool →
  FC → ReLU → FC → sigmoid → channel rescale. ``hidden`` sets the bottleneck width; use
  :func:`se_hidden` to get it from Roy et al.'s *reduction* ratio (``C / r``, r = 2 in their
  code) or Kim et al.'s *amplifying* ratio (``C · α``, α = 16 in their sample-level models).
* :class:`SEBlock1d` / :class:`ResidualSEBlock1d` — Kim et al. (2018) "SE" and "ReSE-2"
  blocks of the sample-level CNN: conv-BN-ReLU-maxpool then SE; and two convs with dropout,
  SE on the residual branch, shortcut, ReLU, maxpool.
* :class:`SpatialSE2d` (sSE), :class:`ChannelSpatialSE2d` (scSE) — Roy et al. (2018):
  ``q = σ(conv1×1(U))`` rescales each position; scSE combines cSE and sSE by element-wise max
  (the official code) or sum (also in the paper).
"""

from __future__ import annotations

import torch
from torch import nn

from audiofcn.nn.conv import ConvBNAct1d


def se_hidden(channels: int, *, reduction: float | None = None,
              amplifying: float | None = None) -> int:
    """Bottleneck width: ``channels / reduction`` or ``channels * amplifying`` (exactly one)."""
    if (reduction is None) == (amplifying is None):
        raise ValueError("give exactly one of reduction= or amplifying=")
    h = channels / reduction if reduction is not None else channels * amplifying  # type: ignore
    return max(1, int(round(h)))


class ChannelSE(nn.Module):
    """cSE: rescale each channel by a gate computed from the global average of all channels.

    Works on any ``(batch, channels, *spatial)`` tensor (1-D or 2-D); the output has the
    input's shape.
    """

    def __init__(self, channels: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or se_hidden(channels, reduction=2)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The excitation ``s`` of shape ``(batch, channels)``, values in (0, 1)."""
        z = x.mean(dim=tuple(range(2, x.dim())))
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(z))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(x)
        return x * s.reshape(*s.shape, *([1] * (x.dim() - 2)))


class SpatialSE2d(nn.Module):
    """sSE: a 1×1 conv to one map, sigmoid, rescale every position.

    Shapes: ``(batch, channels, freq, time)`` -> same.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class ChannelSpatialSE2d(nn.Module):
    """scSE: cSE and sSE in parallel, combined by ``"max"`` (official code) or ``"sum"``.

    Shapes: ``(batch, channels, freq, time)`` -> same.
    """

    def __init__(self, channels: int, reduction: float = 2.0, combine: str = "max") -> None:
        super().__init__()
        if combine not in ("max", "sum"):
            raise ValueError(f"combine must be 'max' or 'sum', got {combine!r}")
        self.cse = ChannelSE(channels, se_hidden(channels, reduction=reduction))
        self.sse = SpatialSE2d(channels)
        self.combine = combine

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, s = self.cse(x), self.sse(x)
        return torch.maximum(c, s) if self.combine == "max" else c + s


class SEBlock1d(nn.Module):
    """Kim et al. "SE" block: ``conv k3 → BN → ReLU → maxpool(pool)`` then channel SE.

    Shapes: ``(batch, in_channels, time)`` -> ``(batch, out_channels, time // pool)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3,
                 pool: int = 3, amplifying: float = 16.0) -> None:
        super().__init__()
        self.conv = ConvBNAct1d(in_channels, out_channels, kernel_size, pool=pool)
        self.se = ChannelSE(out_channels, se_hidden(out_channels, amplifying=amplifying))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.se(self.conv(x))


class ResidualSEBlock1d(nn.Module):
    """Kim et al. "ReSE-2" block.

    ``conv-BN-ReLU-dropout-conv-BN → SE`` added to the shortcut (identity, or 1×1 conv + BN when
    the channels change), then ReLU and max-pool. ``amplifying=0`` gives the plain "Res-2" block.

    Shapes: ``(batch, in_channels, time)`` -> ``(batch, out_channels, time // pool)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3,
                 pool: int = 3, amplifying: float = 16.0, dropout: float = 0.2) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.body = nn.Sequential(
            nn.Conv1d(in_channels, out_channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(out_channels),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(out_channels, out_channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(out_channels),
        )
        self.se: nn.Module = ChannelSE(out_channels, se_hidden(
            out_channels, amplifying=amplifying)) if amplifying else nn.Identity()
        self.shortcut: nn.Module = nn.Identity() if in_channels == out_channels else \
            nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False),
                          nn.BatchNorm1d(out_channels))
        self.pool: nn.Module = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.se(self.body(x)) + self.shortcut(x)))


__all__ = ["ChannelSE", "ChannelSpatialSE2d", "ResidualSEBlock1d", "SEBlock1d", "SpatialSE2d",
           "se_hidden"]
