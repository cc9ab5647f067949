"""Fast streaming inference for stacks of causal convolutions (:mod:`audiofcn.nn.causal`).

:class:`StreamPlan` re-lays a :class:`~audiofcn.nn.causal.StreamingSequential`'s weights once so
that the per-chunk hot path (a 20 ms chunk is one codec frame) is a few calls per layer and
little Python:

* activations are time-major, ``(batch, time, channels)``; a convolution is one matrix product
  on the im2col matrix of ``[cached left context | chunk]``; a transposed convolution is one
  product plus an overlap-add with its cached tail;
* stride-1 convolutions (all residual units) keep their context in two preallocated buffers
  used in turn, and every step but the last writes into buffers it reuses on the next chunk:
  no allocation, no concatenation on the hot path;
* ELU is computed as ``u = elu(x) + 1 = exp(min(x, 0)) + max(x, 0)`` (``F.elu`` goes through
  ``expm1``, ~10x slower than ``exp`` in this torch build), and the ``+ 1`` is folded into the
  next convolution's bias (its left context is padded with ones, the image of the zeros the
  offline model pads with); an ELU right before a convolution is applied as the chunk enters it;
* a residual unit is two products, the skip connection (with the second convolution's bias)
  added to the second one.

Two implementations of the same steps (``fused``): torch ops (``addmm`` and four element-wise
ops per ELU), or, by default when numba is installed, :mod:`audiofcn.nn.fused_kernels`: one
numba pass per layer for the ELU, im2col, context and bias glue, and the products through
numpy's BLAS (1.4x faster per codec frame here; see that module). Output equals
``forward_stream`` of the modules (and hence the offline ``forward``) up to float rounding
either way. Weights are snapshotted: build a new plan after changing the model. The state is a
list the caller owns (one per stream), from :meth:`StreamPlan.new_state`. Inference only (no
autograd through a plan).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn import fused_kernels
from audiofcn.nn.causal import ELU, CausalConv1d, CausalConvTranspose1d, CausalResidualUnit

PlanState = list[Any]


def shifted_elu(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``elu(x) + 1`` as ``exp(min(x, 0)) + max(x, 0)`` (inference only). ``inplace``
    overwrites ``x``."""
    e = x.clamp_max(0).exp_()
    return x.clamp_min_(0).add_(e) if inplace else e.add_(x.clamp_min(0))


def _numpy_ok(t: torch.Tensor) -> bool:
    """Whether the fused (numpy / numba) path can run on ``t``'s memory."""
    return t.device.type == "cpu" and t.dtype == torch.float32


def _elu_into(x: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """``out = elu(x) + 1`` (same ops as :func:`shifted_elu`) with no allocation; ``tmp`` is
    scratch of ``x``'s shape. ``out`` may be ``x``."""
    torch.clamp_max(x, 0, out=tmp).exp_()
    return torch.clamp_min(x, 0, out=out).add_(tmp)


class _Conv:
    """A :class:`CausalConv1d` as one ``addmm`` on ``(batch, time, channels)``.

    Convolutions keep their left context in two preallocated buffers ``[context | chunk]``
    used in turn: the chunk (or its shifted ELU, when ``elu_input``) is written straight into
    the buffer, im2col copies into a fixed matrix, the product goes into a fixed output, and the
    next chunk's context is one copy into the other buffer. That needs chunks of whole strides
    (always true at stride 1); a strided convolution given a chunk that leaves samples over
    takes the general path (concatenation) until its cached samples are a whole context again.
    """

    def __init__(self, conv: CausalConv1d, shifted_input: bool, elu_input: bool = False,
                 fused: bool = False) -> None:
        w = conv.weight.detach()  # (out, in, k)
        out_ch, self.in_ch, self.k = w.shape
        self.stride, self.dilation = conv.stride[0], conv.dilation[0]
        self.receptive, self.left = conv.receptive, conv.left_pad
        shifted_input = shifted_input or elu_input
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(out_ch)
        if shifted_input:  # W (u - 1) + b = W u + (b - sum W)
            bias = bias - w.sum((1, 2))
        # rows (tap, channel), matching the im2col columns
        self.weight = w.permute(2, 1, 0).reshape(self.k * self.in_ch, out_ch).contiguous()
        self.bias, self.out_ch = bias.contiguous(), out_ch
        self.pad = 1.0 if shifted_input else 0.0
        self.elu_input = elu_input
        self.fresh = True  # allocate the output (set False when a later step consumes it)
        self.fused = fused and _numpy_ok(w)
        if self.fused:
            self.weight_np, self.bias_np = self.weight.numpy(), self.bias.numpy()

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        st = state[i]
        if self.k > 1 and x.shape[1] % self.stride == 0:
            if isinstance(st, torch.Tensor):  # general-path context: buffers if it is whole
                if st.shape[1] != self.left:
                    return self._general(x, state, i)
                state[i] = _ConvBuffers(self, x, st)
            return self._buffered(x, state, i)
        if isinstance(st, _ConvBuffers):
            state[i] = st.context().clone()
        return self._general(x, state, i)

    def _general(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        if self.elu_input:
            x = shifted_elu(x)
        b, _, c = x.shape
        hist = state[i]
        if hist is None and self.left:
            hist = x.new_full((b, self.left, c), self.pad)
        buf = torch.cat((hist, x), 1) if hist is not None and hist.shape[1] else x.contiguous()
        length, s = buf.shape[1], self.stride
        m = (length - self.receptive) // s + 1 if length >= self.receptive else 0
        rest = buf[:, m * s:]  # exactly the left context the next frame needs
        state[i] = rest.clone() if buf is x else rest  # x may be a reused buffer
        if m == 0:
            return None
        if self.k == 1:  # 1x1 conv (stride 1, no context)
            cols = buf.reshape(b * m, c)
        else:
            cols = buf.as_strided((b, m, self.k, c), (length * c, s * c, self.dilation * c, 1))
            cols = cols.reshape(b * m, self.k * c)
        return torch.addmm(self.bias, cols, self.weight).view(b, m, self.out_ch)

    def _buffered(self, x: torch.Tensor, state: PlanState, i: int,
                  skip_bias: torch.Tensor | None = None,
                  skip_bias_np: np.ndarray | None = None,
                  defer_bias: bool = False) -> torch.Tensor | None:
        """The stride-1 path; with ``skip_bias`` (a residual unit's) also ``x + skip_bias``
        into the buffers' ``skip``. ``defer_bias`` (fused path only): the caller adds the
        bias (with its ELU, in one pass)."""
        b, n, c = x.shape
        if n == 0:
            return None
        st: _ConvBuffers | None = state[i]
        if st is None or st.shape != (b, n):
            st = state[i] = _ConvBuffers(self, x, None if st is None else st.context())
        j, m = st.turn, st.frames
        if st.fused:
            with_bias = skip_bias_np is not None
            fused_kernels.conv_prep(x.contiguous().numpy(), st.bufs_np[j], st.bufs_np[1 - j],
                                    self.elu_input, skip_bias_np if with_bias else st.dummy_np,
                                    st.skip_np, with_bias)
            st.cols4.copy_(st.windows[j])
            st.turn = 1 - j
            if self.fresh:
                out = x.new_empty(b * m, self.out_ch)
                out_np = out.numpy()
            else:
                out, out_np = st.out, st.out_np
            np.dot(st.cols_np, self.weight_np, out=out_np)  # numpy's BLAS: see fused_kernels
            if not defer_bias:
                fused_kernels.bias_act(out_np, self.bias_np, False)
            return out.view(b, m, self.out_ch)
        slot = st.slots[j]
        if self.elu_input:
            _elu_into(x, slot, st.tmp)
        else:
            slot.copy_(x)
        st.cols4.copy_(st.windows[j])
        st.next_context[j].copy_(st.tails[j])
        if skip_bias is not None:
            torch.add(x, skip_bias, out=st.skip)
        out = torch.addmm(self.bias, st.cols, self.weight,
                          out=None if self.fresh else st.out)
        st.turn = 1 - j
        return out.view(b, m, self.out_ch)


class _ConvBuffers:
    """Per-stream buffers of a :class:`_Conv` for chunks of ``n`` samples (``n`` a multiple of
    the stride; rebuilt, carrying the context over, when the chunk size changes). ``context``:
    the ``left`` cached samples (None: the start of the stream, padding)."""

    def __init__(self, conv: _Conv, x: torch.Tensor, context: torch.Tensor | None) -> None:
        b, n, c = x.shape
        left, k, d, s = conv.left, conv.k, conv.dilation, conv.stride
        length = left + n
        self.shape, self.left = (b, n), left
        self.frames = m = n // s
        self.bufs = [x.new_empty(b, length, c) for _ in range(2)]
        if context is None:
            self.bufs[0][:, :left] = conv.pad
        else:
            if context.shape[0] != b:
                raise ValueError("the batch size cannot change within a stream")
            self.bufs[0][:, :left] = context
        self.turn = 0
        self.slots = [buf[:, left:] for buf in self.bufs]
        self.windows = [buf.as_strided((b, m, k, c), (length * c, s * c, d * c, 1))
                        for buf in self.bufs]
        self.tails = [buf[:, n:] for buf in self.bufs]  # the next chunk's left context
        self.next_context = [self.bufs[1][:, :left], self.bufs[0][:, :left]]
        self.cols = x.new_empty(b * m, k * c)
        self.cols4 = self.cols.view(b, m, k, c)
        self.out = x.new_empty(b * m, conv.out_ch)
        self.unit_out = x.new_empty(b * m, conv.out_ch)  # a residual unit's sum
        self.skip = x.new_empty(b, n, c)  # a residual unit's x + conv2 bias
        self.tmp = x.new_empty(b, n, c)
        self.fused = conv.fused and _numpy_ok(x)
        if self.fused:  # numpy views (shared memory) for the numba kernels
            self.bufs_np = [buf.numpy() for buf in self.bufs]
            self.cols_np = self.cols.numpy()
            self.skip_np = self.skip.numpy()
            self.out_np = self.out.numpy()
            self.unit_out_np = self.unit_out.numpy()
            self.dummy_np = np.zeros(1, np.float32)

    def context(self) -> torch.Tensor:
        """The next chunk's left context (a view)."""
        return self.bufs[self.turn][:, :self.left]


class _ConvTranspose:
    """A :class:`CausalConvTranspose1d` as one ``addmm`` plus overlap-add with the cached tail
    (the kernel is zero-padded to a multiple of the stride). With ``elu_input`` the shifted ELU
    of the input is taken first (into a scratch buffer)."""

    def __init__(self, conv: CausalConvTranspose1d, shifted_input: bool,
                 elu_input: bool = False, fused: bool = False) -> None:
        w = conv.weight.detach()  # (in, out, k)
        c_in, self.out_ch, k = w.shape
        self.stride = s = conv.stride[0]
        self.taps = -(-k // s)  # frames one input frame reaches
        w = F.pad(w, (0, self.taps * s - k))
        bias = conv.bias.detach() if conv.bias is not None else w.new_zeros(self.out_ch)
        # column (tap, t, out): contribution of a frame to sample t of the tap-th next frame
        full_bias = torch.cat([bias.repeat(s), bias.new_zeros((self.taps - 1) * s * self.out_ch)])
        if shifted_input or elu_input:
            full_bias = full_bias - w.sum(0).permute(1, 0).reshape(-1)
        self.weight = w.permute(0, 2, 1).reshape(c_in, -1).contiguous()
        self.bias = full_bias.contiguous()
        self.frame = s * self.out_ch
        self.elu_input = elu_input
        self.fresh = True
        self.fused = fused and _numpy_ok(w)
        if self.fused:
            self.weight_np, self.bias_np = self.weight.numpy(), self.bias.numpy()

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        b, n, c = x.shape
        if n == 0:
            return None
        if self.taps == 2:
            return self._two_taps(x, state, i)
        if self.elu_input:
            x = shifted_elu(x)
        y = torch.addmm(self.bias, x.reshape(b * n, c), self.weight)
        y = y.view(b, n, self.taps, self.frame)
        tail = state[i]
        if self.taps == 1:
            out = y[:, :, 0]
        else:
            full = y.new_zeros(b, n + self.taps - 1, self.frame)
            for j in range(self.taps):
                full[:, j:j + n] += y[:, :, j]
            if tail is not None:
                full[:, :self.taps - 1] += tail
            out, state[i] = full[:, :n], full[:, n:]
        return out.reshape(b, n * self.stride, self.out_ch)

    def _two_taps(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        """Products go into two buffers used in turn, so the tail (the second tap of the last
        frame) is read from the other buffer without a copy."""
        b, n, c = x.shape
        st: _ConvTransposeBuffers | None = state[i]
        if st is None or st.shape != (b, n):
            st = state[i] = _ConvTransposeBuffers(self, x, st)
        if st.fused:  # bias, overlap-add and the tail in one pass
            x_np = x.contiguous().numpy().reshape(b * n, c)
            if self.elu_input:
                fused_kernels.shifted_elu(x_np.reshape(-1), st.elu_np.reshape(-1))
                x_np = st.elu_np
            np.dot(x_np, self.weight_np, out=st.products_np)
            out = x.new_empty(b, n, self.frame) if self.fresh else st.out
            fused_kernels.overlap_add(st.products_np.reshape(b, n, 2 * self.frame),
                                      self.bias_np, st.tail_np,
                                      out.numpy() if self.fresh else st.out_np)
            return out.view(b, n * self.stride, self.out_ch)
        j = st.turn
        if self.elu_input:
            x = _elu_into(x, st.elu, st.tmp)
        y = st.products[j]
        torch.addmm(self.bias, x.reshape(b * n, c), self.weight, out=y)
        out = x.new_empty(b, n, self.frame) if self.fresh else st.out
        torch.add(st.first[j][:, :1], st.tail, out=out[:, :1])
        if n > 1:
            torch.add(st.first[j][:, 1:], st.second[j][:, :-1], out=out[:, 1:])
        st.tail = st.second[j][:, -1:]
        st.turn = 1 - j
        return out.view(b, n * self.stride, self.out_ch)


class _ConvTransposeBuffers:
    def __init__(self, conv: _ConvTranspose, x: torch.Tensor,
                 old: _ConvTransposeBuffers | None) -> None:
        b, n, c = x.shape
        self.shape = (b, n)
        self.products = [x.new_empty(b * n, 2 * conv.frame) for _ in range(2)]
        views = [p.view(b, n, 2, conv.frame) for p in self.products]
        self.first = [v[:, :, 0] for v in views]
        self.second = [v[:, :, 1] for v in views]
        self.tail = x.new_zeros(b, 1, conv.frame) if old is None else old.tail.clone()
        self.turn = 0
        self.out = x.new_empty(b, n, conv.frame)
        self.elu = x.new_empty(b, n, c)
        self.tmp = x.new_empty(b, n, c)
        self.fused = conv.fused and _numpy_ok(x)
        if self.fused:  # numpy views; the tail (bias included) in its own buffer
            self.elu_np = self.elu.view(b * n, c).numpy()
            self.products_np = self.products[0].numpy()
            self.out_np = self.out.numpy()
            self.tail_buf = x.new_zeros(b, conv.frame) if old is None else old.tail_buf.clone()
            self.tail_np = self.tail_buf.numpy()


class _ResidualUnit:
    """``x + conv2(elu(conv1(elu(x))))`` as two ``addmm`` (the skip is the second one's input)
    and one bias add; the first ELU is written straight into conv1's context buffer."""

    def __init__(self, unit: CausalResidualUnit, fused: bool = False) -> None:
        self.conv1 = _Conv(unit.conv1, shifted_input=True, elu_input=True, fused=fused)
        self.conv1.fresh = False
        w2 = unit.conv2.weight.detach()[:, :, 0]  # (out, in)
        b2 = unit.conv2.bias.detach() if unit.conv2.bias is not None else w2.new_zeros(
            w2.shape[0])
        self.w2 = w2.T.contiguous()
        self.b2 = (b2 - w2.sum(1)).contiguous()  # x + W2 (v - 1) + b2 = x + W2 v + (b2 - W2 1)
        self.b2_np: np.ndarray | None = None
        if self.conv1.fused:
            self.b2_np, self.w2_np = self.b2.numpy(), self.w2.numpy()
        self.fresh = True

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor | None:
        b, n, c = x.shape
        h = self.conv1._buffered(x, state, i, self.b2, self.b2_np, defer_bias=True)
        if h is None:  # empty chunk (stride 1: n frames in, n out)
            return None
        st: _ConvBuffers = state[i]
        if st.fused:
            h_np = st.out_np
            fused_kernels.bias_act(h_np, self.conv1.bias_np, True)
            if self.fresh:
                out = x.new_empty(b * n, c)
                out_np = out.numpy()
            else:
                out, out_np = st.unit_out, st.unit_out_np
            np.dot(h_np, self.w2_np, out=out_np)
            fused_kernels.add_into(out_np.reshape(-1), st.skip_np.reshape(-1))
            return out.view(b, n, c)
        _elu_into(h, h, st.tmp)
        # x + b2 + W2 v (the bias went in with x, in conv1's pass over it)
        out = torch.addmm(st.skip.view(b * n, c), st.out, self.w2,
                          out=None if self.fresh else st.unit_out)
        return out.view(b, n, c)


class _ShiftedElu:
    """``elu(x) + 1``; the next convolution removes the ``+ 1`` (folded into its bias)."""

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        return shifted_elu(x)


class _Unshift:
    """``- 1`` after a shifted ELU that no convolution follows."""

    def __call__(self, x: torch.Tensor, state: PlanState, i: int) -> torch.Tensor:
        return x - 1.0


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

    def __init__(self, modules: Iterable[nn.Module], fused: bool | None = None) -> None:
        if fused is None:
            fused = fused_kernels.AVAILABLE
        elif fused and not fused_kernels.AVAILABLE:
            raise RuntimeError("fused kernels unavailable (numba missing or AUDIOFCN_NO_NUMBA)")
        steps: list[Any] = []
        shifted = False  # activations currently hold elu(x) + 1
        elu_pending = False  # an ELU the next convolution applies on its way in
        out_ch = 0
        for m in modules:
            if elu_pending and not isinstance(m, (CausalConv1d, CausalConvTranspose1d)):
                steps.append(_ShiftedElu())
                shifted, elu_pending = True, False
            if isinstance(m, CausalConv1d):
                steps.append(_Conv(m, shifted, elu_input=elu_pending, fused=fused))
                shifted = elu_pending = False
                out_ch = m.out_channels
            elif isinstance(m, CausalConvTranspose1d):
                steps.append(_ConvTranspose(m, shifted, elu_input=elu_pending, fused=fused))
                shifted = elu_pending = False
                out_ch = m.out_channels
            elif _is_elu(m):
                if shifted:
                    steps.append(_Unshift())
                    shifted = False
                elu_pending = True
            else:
                if shifted:
                    steps.append(_Unshift())
                    shifted = False
                if isinstance(m, CausalResidualUnit):
                    steps.append(_ResidualUnit(m, fused=fused))
                    out_ch = m.conv2.out_channels
                else:
                    steps.append(_Pointwise(m))
        if elu_pending:
            steps.append(_ShiftedElu())
            shifted = True
        if shifted:
            steps.append(_Unshift())
        # Every step but the last writes into buffers it reuses on the next chunk (its output
        # is consumed within the chunk); the last one allocates what the caller keeps.
        for f in steps[:-1]:
            if hasattr(f, "fresh"):
                f.fresh = False
        self.steps = steps
        self.out_channels = out_ch
        self.fused = any(getattr(f, "fused", False) or hasattr(f, "w2_np") for f in steps)

    def new_state(self) -> PlanState:
        return [None] * len(self.steps)

    def step(self, x: torch.Tensor, state: PlanState) -> torch.Tensor:
        blas = fused_kernels.blas_one_thread() if self.fused else []
        x = x.detach()  # inference only; numpy views need tensors outside autograd
        try:
            for i, f in enumerate(self.steps):
                y = f(x, state, i)
                if y is None:  # a strided conv is waiting for more samples: nothing further yet
                    return x.new_zeros(x.shape[0], 0, self.out_channels)
                x = y
            return x
        finally:
            fused_kernels.blas_restore(blas)
