"""Causal convolution blocks with optional int8 fake quantization, for ports of int8 graphs.

A TFLite graph converted with quantization-aware training runs some layers in int8: each such
layer's output is rounded to an affine int8 grid ``(q - zero_point) * scale`` (per tensor, or per
channel). :class:`FakeQuant` reproduces that rounding in float (the straight-through estimator
passes gradients unchanged), so a PyTorch port computes what the int8 kernels compute, up to the
kernels' fixed-point rounding, and can still be trained.

Every layer here takes ``(batch, channels, time)`` and an optional ``cache`` dict: with
``cache=None`` the left context is zeros (offline, causal); with a dict the layer reads its
context from ``cache[self]`` and writes the new one back, so feeding a signal chunk by chunk
gives the offline output (streaming). Chunks must hold whole strides of each strided layer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Cache = dict[Any, torch.Tensor] | None


class FakeQuant(nn.Module):
    """Round to an int8 affine grid: ``(clamp(round(x / s) + z, -128, 127) - z) * s``.

    ``scale`` and ``zero_point`` are per channel (dim 1 of the input), ``(channels,)``.
    Gradients pass straight through (the rounding is treated as the identity).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.register_buffer("zero_point", torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 2)
        s, z = self.scale.view(shape), self.zero_point.view(shape)
        y = (torch.clamp(torch.round(x / s) + z, -128.0, 127.0) - z) * s
        if x.requires_grad:
            return x + (y - x).detach()
        return y


def _maybe_quant(channels: int, quantized: bool) -> FakeQuant | None:
    return FakeQuant(channels) if quantized else None


class QLeakyReLU(nn.Module):
    """Leaky ReLU, then (if ``quantized``) the int8 rounding of its output."""

    def __init__(self, channels: int, slope: float, quantized: bool = False) -> None:
        super().__init__()
        self.slope = slope
        self.out_q = _maybe_quant(channels, quantized)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(x, self.slope)
        return y if self.out_q is None else self.out_q(y)


class QAdd(nn.Module):
    """Residual sum ``a + b``, then (if ``quantized``) the int8 rounding."""

    def __init__(self, channels: int, quantized: bool = False) -> None:
        super().__init__()
        self.out_q = _maybe_quant(channels, quantized)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = a + b
        return y if self.out_q is None else self.out_q(y)


def _context(module: nn.Module, x: torch.Tensor, size: int, cache: Cache) -> torch.Tensor:
    """``[left context | x]``: zeros offline, the cached tail of the previous chunk streaming."""
    if size == 0:
        return x
    prev = cache.get(module) if cache is not None else None
    if prev is None:
        prev = x.new_zeros(x.shape[0], x.shape[1], size)
    full = torch.cat([prev, x], dim=-1)
    if cache is not None:
        cache[module] = full[..., full.shape[-1] - size:].detach()
    return full


class QCausalConv1d(nn.Conv1d):
    """Causal (left-context only) grouped/dilated/strided conv, as a streaming TFLite conv.

    The left context is ``(kernel - 1) * dilation + 1 - stride`` frames, so ``T`` input frames
    give ``T / stride`` output frames (``T`` a multiple of the stride). Output rounded to int8
    when ``quantized``. Shapes: ``(batch, in, T)`` -> ``(batch, out, T / stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, dilation: int = 1, groups: int = 1,
                 quantized: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         dilation=dilation, groups=groups)
        self.context = (kernel_size - 1) * dilation + 1 - stride
        self.out_q = _maybe_quant(out_channels, quantized)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-1] % self.stride[0]:
            raise ValueError(f"{x.shape[-1]} frames is not a multiple of the stride "
                             f"{self.stride[0]}")
        xp = _context(self, x, self.context, cache)
        k, g = self.kernel_size[0], self.groups
        if k == 1 and self.stride[0] == 1:  # 1x1 (grouped) conv as one batched matmul
            b, c, t = xp.shape
            w = self.weight.view(g, self.out_channels // g, c // g)
            y = torch.matmul(w, xp.view(b, g, c // g, t)).view(b, self.out_channels, t)
            y = y + self.bias[:, None]
        elif g == self.in_channels == self.out_channels and self.stride[0] == 1:
            # depthwise: k shifted multiply-adds (oneDNN's grouped conv is slow for this)
            t, d = x.shape[-1], self.dilation[0]
            w = self.weight[:, 0]
            y = self.bias[:, None] + w[:, :1] * xp[..., :t]
            for j in range(1, k):
                y = y + w[:, j:j + 1] * xp[..., j * d:j * d + t]
        else:
            y = self._conv_forward(xp, self.weight, self.bias)
        return y if self.out_q is None else self.out_q(y)


class QCausalConvTranspose1d(nn.Module):
    """Causal transposed conv (kernel ``m * stride``), as a streaming TFLite transposed conv.

    Each input frame's ``kernel``-sample contribution (bias included) is rounded to int8 on its
    own when ``quantized`` (the TFLite graph runs one frame at a time and overlap-adds in float);
    the contributions are overlap-added and the bias counted once. ``weight`` has the
    ``nn.ConvTranspose1d`` layout ``(in, out / groups, kernel)``.
    Shapes: ``(batch, in, T)`` -> ``(batch, out, T * stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int, groups: int = 1, quantized: bool = False) -> None:
        super().__init__()
        if kernel_size % stride:
            raise ValueError("kernel_size must be a multiple of stride")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.out_q = _maybe_quant(out_channels, quantized)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        b, _, t = x.shape
        g, s, m = self.groups, self.stride, self.kernel_size // self.stride
        xg = x.reshape(b, g, self.in_channels // g, t)
        w = self.weight.reshape(g, self.in_channels // g, self.out_channels // g,
                                self.kernel_size)
        y = torch.einsum("bgit,giok->bgokt", xg, w).reshape(b, self.out_channels, m, s, t)
        if self.out_q is not None:  # per-frame contribution with its bias, rounded, bias off
            bias = self.bias.view(-1, 1, 1, 1)
            y = self.out_q((y + bias).flatten(2, 3)).view_as(y) - bias
        out = y.new_zeros(b, self.out_channels, s, t + m - 1)
        for i in range(m):
            out[..., i:i + t] += y[:, :, i]
        if m > 1:
            prev = cache.get(self) if cache is not None else None
            if prev is not None:
                out[..., :m - 1] += prev
            if cache is not None:
                cache[self] = out[..., t:].detach().clone()
        out = out[..., :t].permute(0, 1, 3, 2).reshape(b, self.out_channels, t * s)
        return out + self.bias[:, None]


class QResidualUnit(nn.Module):
    """``x + conv1x1(act(conv1x1(depthwise_dilated(act(x)))))``, each step optionally int8.

    ``quantized`` names the steps rounded to int8: a subset of
    ``{"act_a", "dw", "pw", "act_b", "bconv", "add"}``. Shapes: ``(batch, C, T)`` -> same.
    """

    STEPS = ("act_a", "dw", "pw", "act_b", "bconv", "add")

    def __init__(self, channels: int, dilation: int, *, slope: float, groups: int,
                 quantized: frozenset[str] = frozenset()) -> None:
        super().__init__()
        c = channels
        self.act_a = QLeakyReLU(c, slope, "act_a" in quantized)
        self.dw = QCausalConv1d(c, c, 3, dilation=dilation, groups=c, quantized="dw" in quantized)
        self.pw = QCausalConv1d(c, c, 1, quantized="pw" in quantized)
        self.act_b = QLeakyReLU(c, slope, "act_b" in quantized)
        self.bconv = QCausalConv1d(c, c, 1, groups=groups, quantized="bconv" in quantized)
        self.add = QAdd(c, "add" in quantized)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        h = self.pw(self.dw(self.act_a(x), cache))
        return self.add(x, self.bconv(self.act_b(h)))
