"""Fast streaming inference for stacks of causal convolutions (:mod:`audiofcn.nn.causal`).

:class:`StreamPlan` re-lays a :class:`~audiofcn.nn.causal.StreamingSequential`'s weights once so
that the per-chunk hot path (a 20 ms chunk is one codec frame) is a few tensor ops per layer and
little Python:

* activations are time-major, ``(batch, time, channels)``; a convolution is one ``addmm`` (bias
  included) on an im2col view of ``[cached left context | chunk]``; a transposed convolution is
  one ``addmm`` plus an overlap-add with its cached tail;
* ELU is computed as ``u = elu(x) + 1 = exp(min(x, 0)) + max(x, 0)``: four cheap element-wise
  ops (``F.elu`` goes through ``expm1``, ~10x slower than ``exp`` in this torch build), and the
  ``+ 1`` is folded into the next convolution's bias (its left context is padded with ones, the
  image of the zeros the offline model pads with);
* a residual unit is two ``addmm`` (the skip connection is the second one's ``input``) and a
  bias add. (Carrying that bias on an extra constant channel instead costs more: GEMMs whose
  width is not a multiple of 16 run 20-60% slower in MKL.)

Output equals ``forward_stream`` of the modules (and hence the offline ``forward``) up to float
rounding. Weights are snapshotted: build a new plan after changing the model. The state is a list
the caller owns (one per stream), from :meth:`StreamPlan.new_state`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn.causal import ELU, CausalConv1d, CausalConvTranspose1d, CausalResidualUnit

PlanState = list[Any]


def shifted_elu(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``elu(x) + 1`` as ``exp(min(x, 0)) + max(x, 0)`` (inference only). ``inplace``
    overwrites ``x``."""
    e = x.clamp_max(0).exp_()
    return x.clamp_min_(0).add_(e) if inplace else e.add_(x.clamp_min(0))


class _Conv:
    """A :class:`CausalConv1d` as one ``addmm`` on ``(batch, time, channels)``."""

    def __init__(self, conv: CausalConv1d, shifted_input: bool) -> None:
        w = conv.weight.detach()  # (out, in, k)
        out_ch, self.in_ch, self.k = w.shape
        self.stride, self.dilation = conv.stride[0], conv.dilation[0]
        self.receptive, self.left = conv.receptive, conv.left_pad
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(out_ch)
        if shifted_input:  # W (u - 1) + b = W u + (b - sum W)
            bias = bias - w.sum((1, 2))
        # rows (tap, channel), matching the im2col columns
        self.weight = w.permute(2, 1, 0).reshape(self.k * self.in_ch, out_ch).contiguous()
        self.bias, self.out_ch = bias.contiguous(), out_ch
        self.pad = 1.0 if shifted_input else 0.0

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        b, _, c = x.shape
        hist = state[i]
        if hist is None and self.left:
            hist = x.new_full((b, self.left, c), self.pad)
        buf = torch.cat((hist, x), 1) if hist is not None and hist.shape[1] else x.contiguous()
        length, s = buf.shape[1], self.stride
        m = (length - self.receptive) // s + 1 if length >= self.receptive else 0
        state[i] = buf[:, m * s:]  # exactly the left context the next frame needs
        if m == 0:
            return None
        if self.k == 1:  # 1x1 conv (stride 1, no context)
            cols = buf.reshape(b * m, c)
        else:
            cols = buf.as_strided((b, m, self.k, c), (length * c, s * c, self.dilation * c, 1))
            cols = cols.reshape(b * m, self.k * c)
        return torch.addmm(self.bias, cols, self.weight).view(b, m, self.out_ch)


class _ConvTranspose:
    """A :class:`CausalConvTranspose1d` as one ``addmm`` plus overlap-add with the cached tail
    (the kernel is zero-padded to a multiple of the stride)."""

    def __init__(self, conv: CausalConvTranspose1d, shifted_input: bool) -> None:
        w = conv.weight.detach()  # (in, out, k)
        c_in, self.out_ch, k = w.shape
        self.stride = s = conv.stride[0]
        self.taps = -(-k // s)  # frames one input frame reaches
        w = F.pad(w, (0, self.taps * s - k))
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(self.out_ch)
        # column (tap, t, out): contribution of a frame to sample t of the tap-th next frame
        full_bias = torch.cat([bias.repeat(s), bias.new_zeros((self.taps - 1) * s * self.out_ch)])
        if shifted_input:
            full_bias = full_bias - w.sum(0).permute(1, 0).reshape(-1)
        self.weight = w.permute(0, 2, 1).reshape(c_in, -1).contiguous()
        self.bias = full_bias.contiguous()
        self.frame = s * self.out_ch

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        b, n, c = x.shape
        if n == 0:
            return None
        y = torch.addmm(self.bias, x.reshape(b * n, c), self.weight)
        y = y.view(b, n, self.taps, self.frame)
        tail = state[i]
        if self.taps == 1:
            out = y[:, :, 0]
        elif self.taps == 2:
            if tail is None:
                tail = y.new_zeros(b, 1, self.frame)
            out = y[:, :, 0] + (tail if n == 1 else torch.cat((tail, y[:, :-1, 1]), 1))
            state[i] = y[:, -1:, 1]
        else:
            full = y.new_zeros(b, n + self.taps - 1, self.frame)
            for j in range(self.taps):
                full[:, j:j + n] += y[:, :, j]
            if tail is not None:
                full[:, :self.taps - 1] += tail
            out, state[i] = full[:, :n], full[:, n:]
        return out.reshape(b, n * self.stride, self.out_ch)


class _ResidualUnit:
    """``x + conv2(elu(conv1(elu(x))))`` as two ``addmm`` (the skip is the second one's input)
    and one bias add."""

    def __init__(self, unit: CausalResidualUnit) -> None:
        self.conv1 = _Conv(unit.conv1, shifted_input=True)
        w2 = unit.conv2.weight.detach()[:, :, 0]  # (out, in)
        b2 = unit.conv2.bias.detach() if unit.conv2.bias is not None else w2.new_zeros(
            w2.shape[0])
        self.w2 = w2.T.contiguous()
        self.b2 = (b2 - w2.sum(1)).contiguous()  # x + W2 (v - 1) + b2 = x + W2 v + (b2 - W2 1)

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        b, n, c = x.shape
        h = self.conv1(shifted_elu(x), state, i)  # stride 1: n frames in, n out
        if h is None:  # empty chunk
            return None
        v = shifted_elu(h, inplace=True).view(b * n, c)
        return torch.addmm(x.reshape(b * n, c), v, self.w2).add_(self.b2).view(b, n, c)


class _ShiftedElu:
    """``elu(x) + 1``; the next convolution removes the ``+ 1`` (folded into its bias)."""

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        return shifted_elu(x)


class _Unshift:
    """``- 1`` after a shifted ELU that no convolution follows."""

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        return x.sub_(1.0)


class _Pointwise:
    """Any other stateless module, applied on the ``(batch, channels, time)`` layout."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        return self.module(x.transpose(1, 2)).transpose(1, 2).contiguous()


def _is_elu(m: nn.Module) -> bool:
    return isinstance(m, ELU) or (isinstance(m, nn.ELU) and m.alpha == 1.0)


class StreamPlan:
    """Compiled streaming form of a sequence of causal modules (see the module docstring).

    ``step(x, state)``: ``(batch, n, in_channels)`` -> ``(batch, m, out_channels)`` with ``m``
    the frames completed by this chunk (possibly 0). Time-major on both sides.
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        steps: list[Any] = []
        shifted = False  # activations currently hold elu(x) + 1
        out_ch = 0
        for m in modules:
            if isinstance(m, CausalConv1d):
                steps.append(_Conv(m, shifted))
                shifted, out_ch = False, m.out_channels
            elif isinstance(m, CausalConvTranspose1d):
                steps.append(_ConvTranspose(m, shifted))
                shifted, out_ch = False, m.out_channels
            elif _is_elu(m):
                if shifted:
                    steps.append(_Unshift())
                steps.append(_ShiftedElu())
                shifted = True
            else:
                if shifted:
                    steps.append(_Unshift())
                    shifted = False
                if isinstance(m, CausalResidualUnit):
                    steps.append(_ResidualUnit(m))
                    out_ch = m.conv2.out_channels
                else:
                    steps.append(_Pointwise(m))
        if shifted:
            steps.append(_Unshift())
        self.steps = steps
        self.out_channels = out_ch

    def new_state(self) -> PlanState:
        return [None] * len(self.steps)

    def step(self, x: torch.Tensor, state: PlanState) -> torch.Tensor:
        for i, f in enumerate(self.steps):
            y = f(x, state, i)
            if y is None:  # a strided conv is waiting for more samples: nothing further yet
                return x.new_zeros(x.shape[0], 0, self.out_channels)
            x = y
        return x

