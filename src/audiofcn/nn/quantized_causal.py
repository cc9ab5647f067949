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

Three arithmetics (:func:`int8_arithmetic`): ``"float"`` (default; differentiable, for
training) rounds each int8 activation once in float; ``"tflite"`` runs the layers that the
original runs as int8 kernels (``int8=True``: an :class:`Int8Kernel` holds their input grid and
weight scales) with the integer arithmetic of TFLite's reference kernels bit for bit
(:mod:`audiofcn.nn.tflite_int8`), the other roundings (QUANTIZE of a float value) as their
``AffineQuantize``, and convs marked ``reference_order`` in their float summation order;
``"xnnpack"`` does the same with XNNPACK's int8 arithmetic (float layers as torch computes them).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn import tflite_int8 as K

Cache = dict[Any, torch.Tensor] | None

ARITHMETICS = ("float", "tflite", "xnnpack")
_ARITHMETIC: ContextVar[str] = ContextVar("int8_arithmetic", default="float")


@contextmanager
def int8_arithmetic(mode: str) -> Iterator[None]:
    """Run the enclosed forward passes with ``"float"``, ``"tflite"`` or ``"xnnpack"``
    int8 arithmetic."""
    if mode not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {ARITHMETICS}, got {mode!r}")
    token = _ARITHMETIC.set(mode)
    try:
        yield
    finally:
        _ARITHMETIC.reset(token)


def _exact(module: nn.Module) -> bool:
    return _ARITHMETIC.get() != "float" and getattr(module, "int8", None) is not None


def _xnn() -> bool:
    return _ARITHMETIC.get() == "xnnpack"


class Int8Kernel(nn.Module):
    """Quantization parameters of a layer that the original runs as an int8 kernel: the grid
    of its input (``in_scale``, ``in_zero_point``; a residual add also ``in2_*`` for its
    second input), per-output-channel ``weight_scale`` of a conv, and for a transposed conv the
    float copy of the bias (``carry_bias``) that the original subtracts from its carried
    overlap. The output grid is the layer's ``out_q``."""

    def __init__(self, weight_channels: int = 0, two_inputs: bool = False,
                 carry_channels: int = 0) -> None:
        super().__init__()
        self.register_buffer("in_scale", torch.ones(1))
        self.register_buffer("in_zero_point", torch.zeros(1))
        if two_inputs:
            self.register_buffer("in2_scale", torch.ones(1))
            self.register_buffer("in2_zero_point", torch.zeros(1))
        if weight_channels:
            self.register_buffer("weight_scale", torch.ones(weight_channels))
        if carry_channels:
            self.register_buffer("carry_bias", torch.zeros(carry_channels))

    def cached(self, key: tuple, make: Any) -> Any:
        """``make()``, recomputed only when ``key`` changes (the integer weights and
        multipliers of a layer, keyed on its parameters' versions)."""
        hit = self.__dict__.get("_memo")
        if hit is None or hit[0] != key:
            hit = self.__dict__["_memo"] = (key, make())
        return hit[1]

    def grid(self, second: bool = False) -> tuple[float, int]:
        s, z = (self.in2_scale, self.in2_zero_point) if second else \
            (self.in_scale, self.in_zero_point)
        return float(s[0]), int(z[0])

    def recover(self, x: torch.Tensor, second: bool = False) -> torch.Tensor:
        """int8 values behind an input that lies on this layer's input grid."""
        s, z = self.grid(second)
        return K.recover(x, torch.tensor(s, dtype=torch.float32), torch.tensor(z))


def _versions(*modules: nn.Module) -> tuple:
    """Identity and in-place version of every tensor of ``modules``: a cache key."""
    return tuple((id(t), t._version) for m in modules
                 for t in (*m.parameters(recurse=False), *m.buffers(recurse=False)))


def _out_grid(q: FakeQuant, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (-1,) + (1,) * (x.dim() - 2)
    return q.scale.view(shape), q.zero_point.view(shape)


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
        if _ARITHMETIC.get() == "tflite":  # QUANTIZE as TFLite: float32 divide, ties away
            return K.dequantize(K.quantize(x, s, z), s, z)
        if _ARITHMETIC.get() == "xnnpack":  # times the reciprocal, ties to even
            return K.dequantize(K.xnn_quantize(x, s, z), s, z)
        y = (torch.clamp(torch.round(x / s) + z, -128.0, 127.0) - z) * s
        if x.requires_grad:
            return x + (y - x).detach()
        return y


def _maybe_quant(channels: int, quantized: bool) -> FakeQuant | None:
    return FakeQuant(channels) if quantized else None


class QLeakyReLU(nn.Module):
    """Leaky ReLU, then (if ``quantized``) the int8 rounding of its output."""

    def __init__(self, channels: int, slope: float, quantized: bool = False,
                 int8: bool = False) -> None:
        super().__init__()
        self.slope = slope
        self.out_q = _maybe_quant(channels, quantized)
        self.int8 = Int8Kernel() if int8 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _exact(self):
            s, z = _out_grid(self.out_q, x)
            fn = K.xnn_leaky_relu if _xnn() else K.leaky_relu
            q = fn(self.int8.recover(x), *self.int8.grid(), float(s.reshape(-1)[0]),
                   int(z.reshape(-1)[0]), self.slope)
            return K.dequantize(q, s, z)
        y = F.leaky_relu(x, self.slope)
        return y if self.out_q is None else self.out_q(y)


class QAdd(nn.Module):
    """Residual sum ``a + b``, then (if ``quantized``) the int8 rounding."""

    def __init__(self, channels: int, quantized: bool = False, int8: bool = False) -> None:
        super().__init__()
        self.out_q = _maybe_quant(channels, quantized)
        self.int8 = Int8Kernel(two_inputs=True) if int8 else None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if _exact(self):  # int8 ADD; a on the in_* grid, b (the branch) on in2_*
            s, z = _out_grid(self.out_q, a)
            fn = K.xnn_add if _xnn() else K.add
            q = fn(self.int8.recover(a), *self.int8.grid(), self.int8.recover(b, True),
                   *self.int8.grid(True), float(s.reshape(-1)[0]), int(z.reshape(-1)[0]))
            return K.dequantize(q, s, z)
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
                 quantized: bool = False, int8: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         dilation=dilation, groups=groups)
        self.context = (kernel_size - 1) * dilation + 1 - stride
        self.out_q = _maybe_quant(out_channels, quantized)
        self.int8 = Int8Kernel(weight_channels=out_channels) if int8 else None
        # float conv before the original's int8 roundings: in "tflite" arithmetic, sum in the
        # order of TFLite's reference float kernel (K.conv1d_reference_order), bit for bit
        self.reference_order = False

    def int8_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 weights, int32 bias) as int64: the float parameters on the original's grids
        (exact for the converted weights; a fine-tuned model is re-quantized)."""
        ws = self.int8.weight_scale.double()
        w = torch.round(self.weight.detach().double() / ws.view(-1, 1, 1)).clamp(-127, 127)
        b = torch.round(self.bias.detach().double() / (self.int8.grid()[0] * ws))
        return w.to(torch.int64), b.to(torch.int64)

    def _int8_params(self) -> tuple[torch.Tensor, ...]:
        """(int8 weights, int32 bias, multipliers, shifts), cached until a tensor changes."""
        def make() -> tuple[torch.Tensor, ...]:
            w, b = self.int8_weights()
            m, sh = K.conv_multipliers(self.int8.grid()[0], self.int8.weight_scale,
                                       self.out_q.scale)
            return w, b[:, None], m[:, None], sh[:, None]
        return self.int8.cached(_versions(self, self.int8, self.out_q), make)

    def _forward_int8(self, xp: torch.Tensor) -> torch.Tensor:
        w, b, m, sh = self._int8_params()
        s, z = _out_grid(self.out_q, xp)
        acc = K.conv1d_acc(self.int8.recover(xp) - self.int8.grid()[1], w, self.stride[0],
                           self.dilation[0], self.groups) + b
        if _xnn():
            scale = K.xnn_conv_scale(self.int8.grid()[0], self.int8.weight_scale,
                                     self.out_q.scale)
            return K.dequantize(K.xnn_requantize(acc, scale[:, None], z), s, z)
        return K.dequantize(K.requantize(acc, m, sh, z), s, z)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:  # type: ignore[override]
        if x.shape[-1] % self.stride[0]:
            raise ValueError(f"{x.shape[-1]} frames is not a multiple of the stride "
                             f"{self.stride[0]}")
        xp = _context(self, x, self.context, cache)
        if _exact(self):
            return self._forward_int8(xp)
        if self.reference_order and _ARITHMETIC.get() != "float":
            y = K.conv1d_reference_order(xp, self.weight, self.bias, self.stride[0],
                                         self.dilation[0], self.groups, xnnpack=_xnn())
            return y if self.out_q is None else self.out_q(y)
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
                 stride: int, groups: int = 1, quantized: bool = False, int8: bool = False,
                 call_frames: int = 1) -> None:
        super().__init__()
        if kernel_size % stride:
            raise ValueError("kernel_size must be a multiple of stride")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.groups = kernel_size, stride, groups
        self.weight = nn.Parameter(torch.empty(in_channels, out_channels // groups, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.out_q = _maybe_quant(out_channels, quantized)
        self.int8 = Int8Kernel(weight_channels=out_channels, carry_channels=out_channels) \
            if int8 else None
        self.call_frames = call_frames  # input frames per call of the original (int8 kernel)

    def int8_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 weights, int32 bias) as int64, as :meth:`QCausalConv1d.int8_weights`."""
        g, ci, co = self.groups, self.in_channels // self.groups, self.out_channels // self.groups
        ws = self.int8.weight_scale.double()
        w = self.weight.detach().double().view(g, ci, co, -1) / ws.view(g, 1, co, 1)
        w = torch.round(w).clamp(-127, 127).view_as(self.weight)
        b = torch.round(self.bias.detach().double() / (self.int8.grid()[0] * ws))
        return w.to(torch.int64), b.to(torch.int64)

    def _forward_int8(self, x: torch.Tensor, cache: Cache) -> torch.Tensor:
        """TRANSPOSE_CONV on int8 as the original runs it: ``call_frames`` input frames a call,
        their overlaps summed in int32, requantized with the bias, dequantized; the overlap
        with the next call carried in float32 minus ``carry_bias`` and added to it."""
        b, cin, t = x.shape
        n, s, m = self.call_frames, self.stride, self.kernel_size // self.stride
        if t % n or m - 1 > n:
            raise ValueError(f"{t} frames is not a multiple of {n} frames a call")
        def make() -> tuple[torch.Tensor, ...]:
            w, b = self.int8_weights()
            mm, ss = K.conv_multipliers(self.int8.grid()[0], self.int8.weight_scale,
                                        self.out_q.scale)
            return w, b[:, None], mm[:, None], ss[:, None]
        w, bias, m_, sh = self.int8.cached(_versions(self, self.int8, self.out_q), make)
        xq = (self.int8.recover(x) - self.int8.grid()[1]).view(b, cin, t // n, n)
        xq = xq.permute(0, 2, 1, 3).reshape(-1, cin, n)
        acc = K.conv_transpose1d_acc(xq, w, s, self.groups) + bias
        # acc: (batch * calls, out, (n + m - 1) * stride)
        sc, z = _out_grid(self.out_q, acc)
        if _xnn():
            scale = K.xnn_conv_scale(self.int8.grid()[0], self.int8.weight_scale,
                                     self.out_q.scale)
            d = K.dequantize(K.xnn_requantize(acc, scale[:, None], z), sc, z)
        else:
            d = K.dequantize(K.requantize(acc, m_, sh, z), sc, z)
        d = d.view(b, t // n, self.out_channels, -1)
        out = d[..., :n * s].clone()
        if m > 1:
            tail = d[..., n * s:] - self.int8.carry_bias.view(-1, 1)
            prev = cache.get(self) if cache is not None else None
            if prev is not None:
                out[:, 0, :, :(m - 1) * s] += prev
            out[:, 1:, :, :(m - 1) * s] += tail[:, :-1]
            if cache is not None:
                cache[self] = tail[:, -1].clone()
        return out.permute(0, 2, 1, 3).reshape(b, self.out_channels, t * s)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        if _exact(self):
            return self._forward_int8(x, cache)
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
    ``{"act_a", "dw", "pw", "act_b", "bconv", "add"}``; ``int8`` those run as int8
    kernels. Shapes: ``(batch, C, T)`` -> same.
    """

    STEPS = ("act_a", "dw", "pw", "act_b", "bconv", "add")

    def __init__(self, channels: int, dilation: int, *, slope: float, groups: int,
                 quantized: frozenset[str] = frozenset(),
                 int8: frozenset[str] = frozenset()) -> None:
        super().__init__()
        c, q = channels, quantized
        self.act_a = QLeakyReLU(c, slope, "act_a" in q, "act_a" in int8)
        self.dw = QCausalConv1d(c, c, 3, dilation=dilation, groups=c, quantized="dw" in q,
                                int8="dw" in int8)
        self.pw = QCausalConv1d(c, c, 1, quantized="pw" in q, int8="pw" in int8)
        self.act_b = QLeakyReLU(c, slope, "act_b" in q, "act_b" in int8)
        self.bconv = QCausalConv1d(c, c, 1, groups=groups, quantized="bconv" in q,
                                   int8="bconv" in int8)
        self.add = QAdd(c, "add" in q, "add" in int8)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        h = self.pw(self.dw(self.act_a(x), cache))
        return self.add(x, self.bconv(self.act_b(h)))
