"""Convolution blocks: conv → batch norm → activation (→ pooling), 1-D and 2-D, plus residual
units.

These are the building blocks of the taggers (FCN, SampleCNN, the M-series) and of other CNNs in
the package (the embedding net). Keyword arguments after the channels keep call sites readable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """``"relu" | "elu" | "leaky_relu" | "gelu" | "silu" | "identity"`` -> a fresh module."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def _same_padding(kernel_size: int | Sequence[int], dilation: int = 1) -> int | tuple[int, ...]:
    if isinstance(kernel_size, int):
        return dilation * (kernel_size - 1) // 2
    return tuple(dilation * (k - 1) // 2 for k in kernel_size)


class ConvBNAct1d(nn.Sequential):
    """``Conv1d → BatchNorm1d → activation`` and an optional ``MaxPool1d``.

    ``padding=None`` pads ``(k - 1) // 2`` ("same" length for odd kernels at stride 1). The conv
    has no bias when followed by batch norm (the norm's shift makes it redundant).

    Shapes: ``(batch, in_channels, time)`` -> ``(batch, out_channels, time')``, where
    ``time' = floor((time + 2p - k) / stride + 1) // pool``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 stride: int = 1, padding: int | None = None, dilation: int = 1,
                 activation: str = "relu", norm: bool = True, pool: int = 1,
                 bias: bool | None = None) -> None:
        pad = _same_padding(kernel_size, dilation) if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=pad,
                      dilation=dilation, bias=(not norm) if bias is None else bias)]
        if norm:
            layers.append(nn.BatchNorm1d(out_channels))
        layers.append(make_activation(activation))
        if pool > 1:
            layers.append(nn.MaxPool1d(pool))
        super().__init__(*layers)


class ConvBNAct2d(nn.Sequential):
    """``Conv2d → BatchNorm2d → activation`` and an optional ``MaxPool2d``.

    ``pool`` is an int or ``(freq, time)`` tuple; ``padding=None`` keeps the size at stride 1.

    Shapes: ``(batch, in_channels, freq, time)`` -> ``(batch, out_channels, freq', time')``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int] = 3, *, stride: int | tuple[int, int] = 1,
                 padding: int | tuple[int, int] | None = None, activation: str = "relu",
                 norm: bool = True, pool: int | tuple[int, int] = 1,
                 bias: bool | None = None) -> None:
        pad = _same_padding(kernel_size) if padding is None else padding
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=pad,
                      bias=(not norm) if bias is None else bias)]
        if norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(make_activation(activation))
        if pool != 1 and pool != (1, 1):
            # ceil_mode=False: a trailing partial window is dropped, as in Keras "valid" pooling.
            layers.append(nn.MaxPool2d(pool))
        super().__init__(*layers)


class ResidualBlock1d(nn.Module):
    """Two (or more) ``k``-wide conv-BN layers with an identity (or 1×1 conv + BN) shortcut,
    activation after the sum: the basic residual unit of ResNets and of Dai et al.'s M34-res.

    Shapes: ``(batch, in_channels, time)`` -> ``(batch, out_channels, time)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 n_convs: int = 2, activation: str = "relu", dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_convs):
            cin = in_channels if i == 0 else out_channels
            last = i == n_convs - 1
            layers.append(nn.Conv1d(cin, out_channels, kernel_size,
                                    padding=_same_padding(kernel_size), bias=False))
            layers.append(nn.BatchNorm1d(out_channels))
            if not last:
                layers.append(make_activation(activation))
                if dropout:
                    layers.append(nn.Dropout(dropout))
        self.body = nn.Sequential(*layers)
        self.shortcut: nn.Module = nn.Identity() if in_channels == out_channels else \
            nn.Sequential(nn.Conv1d(in_channels, out_channels, 1, bias=False),
                          nn.BatchNorm1d(out_channels))
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class ResidualBlock2d(nn.Module):
    """2-D residual unit: ``conv-BN-act-conv-BN`` (+ shortcut, 1×1 conv + BN when the channels
    or the stride change), then the activation. ``stride`` applies to the first conv.

    Shapes: ``(batch, in_channels, freq, time)`` -> ``(batch, out_channels, freq', time')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, *,
                 stride: int | tuple[int, int] = 1, activation: str = "relu") -> None:
        super().__init__()
        pad = _same_padding(kernel_size)
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=pad,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
            nn.Conv2d(out_channels, out_channels, kernel_size, padding=pad, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        needs_proj = in_channels != out_channels or stride not in (1, (1, 1))
        self.shortcut: nn.Module = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels)) if needs_proj else nn.Identity()
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


__all__ = ["ConvBNAct1d", "ConvBNAct2d", "ResidualBlock1d", "ResidualBlock2d",
           "make_activation"]
