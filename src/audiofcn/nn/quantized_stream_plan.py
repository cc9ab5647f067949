"""Compiled streaming for stacks of int8-rounded causal convolutions (:mod:`.quantized_causal`).

:class:`QuantizedStreamPlan` is the counterpart of :class:`audiofcn.nn.stream_plan.StreamPlan`
for the layers of :mod:`audiofcn.nn.quantized_causal` (grouped, depthwise and strided
convolutions, transposed convolutions, leaky ReLU and :class:`FakeQuant` rounding), as used by
the port of Lyra's SoundStream. At Lyra's frame size (20 ms: 320 samples into the encoder, one
frame into the decoder) the eager modules spend nearly all their time in the dispatch of ~300
small torch ops per frame; here a chunk of any whole number of frames is **one numba call**
(:meth:`QuantizedStreamPlan.step`; a codec's :meth:`~QuantizedStreamPlan.encode_frames` and
:meth:`~QuantizedStreamPlan.decode_frames` take the residual VQ into the same call):

* the plan is built for a fixed input frame (``frame`` time steps) and compiled to a table of
  layers (``prog``: one row of integers per convolution) over one flat weight array and one flat
  per-stream memory array (``state``: every layer's left context, its output, shared scratch);
* a layer writes its activated (leaky ReLU, optionally int8-rounded) input into its context
  buffer, copies im2col windows per group, does one BLAS product per group (``np.dot`` inside
  numba, scipy's BLAS, one thread via :func:`audiofcn.nn.fused_kernels.blas_one_thread`), then
  adds bias, rounds, adds the residual skip and rounds again in one pass;
* depthwise convolutions are direct loops, in the modules' own order of float operations;
* a transposed convolution keeps the (rounded) contributions of its last input frames and sums
  them per output frame in the offline order (``((y_0[f] + y_1[f-1]) + ...) + bias``).

The element-wise steps repeat the modules' float32 operations one for one (no fused
multiply-adds), so the only difference from the offline model is the summation order inside the
matrix products (BLAS against torch): ~1e-7 relative, which moves an int8-rounded value by one
step only when it falls within that distance of a rounding boundary. Weights are snapshotted:
build a new plan after changing the model. Inference only. Without numba (or with
``AUDIOFCN_NO_NUMBA=1``) :data:`AVAILABLE` is False and callers keep the eager modules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn

from audiofcn.nn import fused_kernels
from audiofcn.nn.quantized_causal import (
    FakeQuant,
    QCausalConv1d,
    QCausalConvTranspose1d,
    QLeakyReLU,
    QResidualUnit,
)

AVAILABLE = fused_kernels.AVAILABLE

# Columns of a ``prog`` row.
(OP, T_IN, C_IN, C_OUT, KERNEL, STRIDE, DIL, GROUPS, IN, OUT, W, B, PRE_ACT, PRE_Q, CTX, LEFT,
 OUT_Q, SKIP, ADD_Q, COLS, PROD, ACT_BUF) = range(22)
N_FIELDS = 22
CONV, DEPTHWISE, TRANSPOSED = 0, 1, 2
_ALIGN = 16  # floats (64 bytes) between buffers


def _layers(module: nn.Module) -> Iterator[nn.Module]:
    """The layers in the order they run: registration order, as in the Lyra port's blocks
    (containers without weights of their own are walked into; any other layer is refused)."""
    leaf = (QCausalConv1d, QCausalConvTranspose1d, QLeakyReLU, QResidualUnit)
    for child in module.children():
        if isinstance(child, leaf):
            yield child
        elif any(True for _ in child.children()) and not any(True for _ in
                                                             child.parameters(False)):
            yield from _layers(child)
        else:
            raise TypeError(f"QuantizedStreamPlan cannot run {type(child).__name__}")


class _Builder:
    """Lays out weights (``wts``) and per-stream memory offsets, one ``prog`` row per layer."""

    def __init__(self) -> None:
        self.wts: list[np.ndarray] = []
        self.w_size = 0
        self.mem = 0
        self.scratch_cols = self.scratch_prod = 0
        self.rows: list[list[int]] = []

    def weights(self, a: torch.Tensor | np.ndarray | None) -> int:
        if a is None:
            return -1
        arr = np.ascontiguousarray(np.asarray(a, dtype=np.float32)).reshape(-1)
        off = self.w_size
        pad = -arr.size % _ALIGN
        self.wts += [arr, np.zeros(pad, np.float32)]
        self.w_size += arr.size + pad
        return off

    def quant(self, q: FakeQuant | None) -> int:
        if q is None:
            return -1
        return self.weights(torch.cat([q.scale, q.zero_point]).detach())

    def alloc(self, n: int) -> int:
        off = self.mem
        self.mem += n + (-n % _ALIGN)
        return off


def _pre(act: QLeakyReLU | None, b: _Builder, slope: list[float]) -> tuple[int, int]:
    if act is None:
        return 0, -1
    slope.append(act.slope)
    return 1, b.quant(act.out_q)


class QuantizedStreamPlan:
    """Streaming form of a stack of :mod:`.quantized_causal` layers, for input frames of
    ``frame`` time steps (any whole number of frames per call).

    ``step(x, state)``: ``(batch, m * frame, in_channels)`` -> ``(batch, m * frame_out,
    out_channels)`` float32, time-major; ``state`` from :meth:`new_state` (one per stream).
    """

    def __init__(self, module: nn.Module | Iterable[nn.Module], frame: int,
                 in_channels: int) -> None:
        if not AVAILABLE:
            raise RuntimeError("QuantizedStreamPlan needs numba (AUDIOFCN_NO_NUMBA is set or "
                               "numba is missing)")
        layers = list(_layers(module)) if isinstance(module, nn.Module) else list(module)
        b, slope = _Builder(), []
        t, c = frame, in_channels
        self.in_offset = cur = b.alloc(t * c)
        self.frame, self.in_channels = frame, in_channels
        act: QLeakyReLU | None = None
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, QLeakyReLU):
                    if act is not None:
                        raise ValueError("two activations in a row")
                    act = layer
                elif isinstance(layer, QCausalConv1d):
                    cur, t, c = self._conv(b, layer, act, cur, t, c, slope)
                    act = None
                elif isinstance(layer, QCausalConvTranspose1d):
                    cur, t, c = self._transposed(b, layer, act, cur, t, c, slope)
                    act = None
                elif isinstance(layer, QResidualUnit):
                    if act is not None:
                        raise ValueError("an activation before a residual unit")
                    x = cur
                    cur, t, c = self._conv(b, layer.dw, layer.act_a, cur, t, c, slope)
                    cur, t, c = self._conv(b, layer.pw, None, cur, t, c, slope)
                    cur, t, c = self._conv(b, layer.bconv, layer.act_b, cur, t, c, slope,
                                           skip=x, add_q=layer.add.out_q)
                else:
                    raise TypeError(f"QuantizedStreamPlan cannot run {type(layer).__name__}")
        if act is not None:
            raise ValueError("a trailing activation (no convolution after it)")
        if len(set(slope)) > 1:
            raise ValueError("all leaky ReLUs must share one slope")
        self.slope = np.float32(slope[0] if slope else 0.0)
        self.frame_out, self.out_channels, self.out_offset = t, c, cur
        b.scratch_cols = b.alloc(b.scratch_cols)
        b.scratch_prod = b.alloc(b.scratch_prod)
        for row in b.rows:
            row[COLS], row[PROD] = b.scratch_cols, b.scratch_prod
        self.prog = np.array(b.rows, dtype=np.int64)
        self.wts = np.concatenate(b.wts) if b.wts else np.zeros(0, np.float32)
        self.mem_size = b.mem

    @staticmethod
    def _conv(b: _Builder, conv: QCausalConv1d, act: QLeakyReLU | None, x: int, t: int, c: int,
              slope: list[float], skip: int = -1, add_q: FakeQuant | None = None
              ) -> tuple[int, int, int]:
        k, s, d, g = conv.kernel_size[0], conv.stride[0], conv.dilation[0], conv.groups
        if c != conv.in_channels or t % s:
            raise ValueError(f"{type(conv).__name__}: {t} x {c} input does not fit")
        out_ch, left, m = conv.out_channels, conv.context, t // s
        pre, pre_q = _pre(act, b, slope)
        w = conv.weight.detach()  # (out, in / g, k)
        depthwise = g == c == out_ch and s == 1
        if depthwise:
            op, w_off = DEPTHWISE, b.weights(w[:, 0].T)  # (k, C)
        else:  # per group: rows (tap, in channel), columns out channel
            cg, og = c // g, out_ch // g
            op = CONV
            w_off = b.weights(w.view(g, og, cg, k).permute(0, 3, 2, 1))
            b.scratch_cols = max(b.scratch_cols, m * k * cg)
            b.scratch_prod = max(b.scratch_prod, m * og)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(out_ch)
        ctx = b.alloc((left + t) * c)
        out = b.alloc(m * out_ch)
        b.rows.append([op, t, c, out_ch, k, s, d, g, x, out, w_off, b.weights(bias), pre, pre_q,
                       ctx, left, b.quant(conv.out_q), skip, b.quant(add_q), 0, 0, -1])
        return out, m, out_ch

    @staticmethod
    def _transposed(b: _Builder, conv: QCausalConvTranspose1d, act: QLeakyReLU | None, x: int,
                    t: int, c: int, slope: list[float]) -> tuple[int, int, int]:
        if c != conv.in_channels:
            raise ValueError(f"{type(conv).__name__}: {c} input channels, expected "
                             f"{conv.in_channels}")
        g, s, k, out_ch = conv.groups, conv.stride, conv.kernel_size, conv.out_channels
        taps, cg, og = k // s, c // g, out_ch // g
        pre, pre_q = _pre(act, b, slope)
        w = conv.weight.detach().view(g, cg, og, taps * s)  # columns (tap, sample, out)
        w_off = b.weights(w.permute(0, 1, 3, 2))
        b.scratch_cols = max(b.scratch_cols, t * cg)
        b.scratch_prod = max(b.scratch_prod, t * k * og)
        act_buf = b.alloc(t * c)
        hist = b.alloc((taps - 1 + t) * k * out_ch)  # per input frame: its contributions
        out = b.alloc(t * s * out_ch)
        b.rows.append([TRANSPOSED, t, c, out_ch, k, s, 1, g, x, out, w_off,
                       b.weights(conv.bias.detach()), pre, pre_q, hist, taps - 1,
                       b.quant(conv.out_q), -1, -1, 0, 0, act_buf])
        return out, t * s, out_ch

    def new_state(self, batch: int = 1) -> np.ndarray:
        """Zeroed per-stream memory (zero left context, as the offline model pads)."""
        return np.zeros((batch, self.mem_size), np.float32)

    def step(self, x: torch.Tensor | np.ndarray, state: np.ndarray) -> torch.Tensor:
        """``(batch, m * frame, in_channels)`` -> ``(batch, m * frame_out, out_channels)``."""
        xa = x.detach().numpy() if isinstance(x, torch.Tensor) else x
        xa = np.ascontiguousarray(xa, dtype=np.float32)
        bsz, n, c = xa.shape
        if n % self.frame or c != self.in_channels or bsz != state.shape[0]:
            raise ValueError(f"input {tuple(xa.shape)}: expected (batch={state.shape[0]}, "
                             f"multiple of {self.frame}, {self.in_channels})")
        m = n // self.frame
        out = np.empty((bsz, m * self.frame_out, self.out_channels), np.float32)
        blas = fused_kernels.blas_one_thread()
        try:
            _kernels.run(self.prog, self.wts, state, xa, out, self.in_offset, self.out_offset,
                         self.slope)
        finally:
            fused_kernels.blas_restore(blas)
        return torch.from_numpy(out)


    # --- a codec's two ends in one call each (plan + residual VQ; the Lyra port's hot path) ---
    def encode_frames(self, x: np.ndarray, state: np.ndarray, rvq: SequentialRVQ, n_q: int
                      ) -> np.ndarray:
        """Encoder plan (one input channel, one latent step per frame) and residual VQ:
        audio ``(batch, m * frame)`` float32 -> codes ``(batch, m, n_q)`` int64."""
        if self.in_channels != 1 or self.frame_out != 1:
            raise ValueError("encode_frames needs a plan with 1 input channel, 1 output step")
        if not 1 <= n_q <= rvq.codebooks.shape[0] or rvq.codebooks.shape[2] != self.out_channels:
            raise ValueError(f"n_q must be in [1, {rvq.codebooks.shape[0]}] (latent size "
                             f"{rvq.codebooks.shape[2]}), got {n_q} ({self.out_channels})")
        bsz, n = x.shape
        if n % self.frame or bsz != state.shape[0]:
            raise ValueError(f"input {x.shape}: expected (batch={state.shape[0]}, multiple of "
                             f"{self.frame})")
        codes = np.empty((bsz, n // self.frame, n_q), np.int64)
        blas = fused_kernels.blas_one_thread()
        try:
            _kernels.encode(self.prog, self.wts, state, np.ascontiguousarray(x, np.float32),
                            self.in_offset, self.out_offset, self.slope, rvq.codebooks,
                            rvq.transposed, rvq.norms, codes)
        finally:
            fused_kernels.blas_restore(blas)
        return codes

    def decode_frames(self, codes: np.ndarray, state: np.ndarray, rvq: SequentialRVQ
                      ) -> np.ndarray:
        """Summed code vectors into the decoder plan (one input step of the latent size per
        frame, one output channel): codes ``(batch, n_q, m)`` -> ``(batch, m * frame_out)``."""
        bsz, n_q, m = codes.shape
        if self.frame != 1 or self.out_channels != 1 \
                or rvq.codebooks.shape[2] != self.in_channels:
            raise ValueError("decode_frames needs a plan with 1 input step of the latent size "
                             "and 1 output channel")
        if not 1 <= n_q <= rvq.codebooks.shape[0] or bsz != state.shape[0]:
            raise ValueError(f"codes {codes.shape}: expected (batch={state.shape[0]}, "
                             f"1..{rvq.codebooks.shape[0]} codebooks, frames)")
        out = np.empty((bsz, m * self.frame_out), np.float32)
        blas = fused_kernels.blas_one_thread()
        try:
            ok = _kernels.decode(self.prog, self.wts, state,
                                 np.ascontiguousarray(codes, np.int64), self.in_offset,
                                 self.out_offset, self.slope, rvq.codebooks, out)
        finally:
            fused_kernels.blas_restore(blas)
        if not ok:
            raise ValueError("code out of range for the codebooks")
        return out


class SequentialRVQ:
    """A :class:`~audiofcn.nn.quantizer.ResidualVectorQuantizer` snapshot for the plans, with
    the operations of its own ``encode`` / ``decode``: per codebook ``|c|^2 - (2 r) . c`` with
    the layers' own norms, first minimum, ``r - c``; decoding sums the code vectors in codebook
    order (bit for bit the module's). Only the summation inside each product differs (scipy's
    BLAS here, torch's there), so a code can differ only at a near-tie of two distances
    (:class:`~audiofcn.nn.quantizer.FrozenRVQ` uses other formulas and picks other codes more
    often).

    ``encode(z, n_q)``: ``(N, D)`` -> ``(N, n_q)`` int64; ``decode(codes)``: ``(B, n_q, T)`` ->
    ``(B, T, D)`` float32 (time-major).
    """

    def __init__(self, rvq: nn.Module) -> None:
        with torch.no_grad():
            layers = list(rvq.layers)
            self.codebooks = np.stack([layer.codebook.detach().float().numpy()
                                       for layer in layers])  # (Q, K, D)
            # the norms exactly as the layers compute them
            self.norms = np.stack([layer.codebook.detach().float().square().sum(1).numpy()
                                   for layer in layers])
        self.transposed = np.ascontiguousarray(self.codebooks.transpose(0, 2, 1))

    def encode(self, z: torch.Tensor, n_q: int) -> torch.Tensor:
        if not 1 <= n_q <= self.codebooks.shape[0]:
            raise ValueError(f"n_q must be in [1, {self.codebooks.shape[0]}], got {n_q}")
        codes = np.empty((z.shape[0], n_q), np.int64)
        _kernels.rvq_encode(np.array(z.detach().numpy(), np.float32), self.codebooks,
                            self.transposed, self.norms, codes)
        return torch.from_numpy(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        b, n_q, t = codes.shape
        if not 1 <= n_q <= self.codebooks.shape[0]:
            raise ValueError(f"{n_q} codebooks given, model has {self.codebooks.shape[0]}")
        if codes.numel() == 0:
            return torch.zeros(b, t, self.codebooks.shape[2])
        if int(codes.min()) < 0 or int(codes.max()) >= self.codebooks.shape[1]:
            raise ValueError("code out of range for the codebooks")
        flat = np.ascontiguousarray(codes.permute(0, 2, 1).reshape(b * t, n_q).numpy())
        out = np.empty((b * t, self.codebooks.shape[2]), np.float32)
        _kernels.rvq_decode(flat, self.codebooks, out)
        return torch.from_numpy(out).view(b, t, -1)


if AVAILABLE:
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS that numba's np.dot calls)

    from audiofcn.nn import quantized_stream_kernels as _kernels

    fused_kernels.refresh_blas()  # so that blas_one_thread also holds scipy's BLAS to 1 thread
