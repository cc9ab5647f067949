"""numba kernels of :class:`audiofcn.nn.quantized_stream_plan.QuantizedStreamPlan`.

Imported only when numba is available (:data:`audiofcn.nn.fused_kernels.AVAILABLE`). ``run``
executes a plan's layer table (``prog``, columns named in :mod:`.quantized_stream_plan`) frame by
frame over flat float32 ``wts`` (weights) and ``mem`` (per-stream memory, one row per batch
item). Compiled without ``fastmath``: the element-wise steps (leaky ReLU, int8 rounding, bias,
residual sums, depthwise taps) keep the float32 operations of the torch modules, in their order.
The products go through ``np.dot`` (numba calls scipy's BLAS ``sgemm``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from audiofcn.nn.quantized_stream_plan import (
    ACT_BUF,
    ADD_Q,
    C_IN,
    C_OUT,
    COLS,
    CONV,
    CTX,
    DEPTHWISE,
    DIL,
    GROUPS,
    IN,
    KERNEL,
    LEFT,
    OP,
    OUT,
    OUT_Q,
    PRE_ACT,
    PRE_Q,
    PROD,
    SKIP,
    STRIDE,
    T_IN,
    B,
    W,
)

_f = np.float32
_LO, _HI = _f(-128.0), _f(127.0)


@njit(cache=True, boundscheck=False, inline="always")
def _fq(v: float, s: float, z: float) -> float:
    """:class:`FakeQuant`: ``(clamp(round(v / s) + z, -128, 127) - z) * s`` in float32."""
    r = np.rint(v / s) + z
    r = min(max(r, _LO), _HI)
    return (r - z) * s


@njit(cache=True, boundscheck=False)
def _view(mem: np.ndarray, off: int, rows: int, cols: int) -> np.ndarray:
    return mem[off:off + rows * cols].reshape((rows, cols))


# The loops below index 2-D views with loop counters only (so numba's negative-index check
# folds away) and keep each pass a simple loop over channels (so LLVM vectorises it).
@njit(cache=True, boundscheck=False)
def _round_rows(y: np.ndarray, wts: np.ndarray, q: int) -> None:
    """``y`` ``(rows, C)`` in place: :class:`FakeQuant` with scale / zero point at ``wts[q:]``."""
    c = y.shape[1]
    s, z = wts[q:q + c], wts[q + c:q + 2 * c]
    for j in range(y.shape[0]):
        for ch in range(c):
            y[j, ch] = _fq(y[j, ch], s[ch], z[ch])


@njit(cache=True, boundscheck=False)
def _activate(p: np.ndarray, wts: np.ndarray, mem: np.ndarray, dst: np.ndarray, slope: float
              ) -> None:
    """Input ``(rows, C_IN)`` at ``p[IN]`` -> leaky ReLU (+ rounding) -> ``dst``."""
    x = _view(mem, p[IN], dst.shape[0], dst.shape[1])
    for t in range(dst.shape[0]):
        for c in range(dst.shape[1]):
            v = x[t, c]
            dst[t, c] = v if v > _f(0.0) else v * slope
    if p[PRE_Q] >= 0:
        _round_rows(dst, wts, p[PRE_Q])


@njit(cache=True, boundscheck=False)
def _epilogue(p: np.ndarray, wts: np.ndarray, mem: np.ndarray, y: np.ndarray) -> None:
    """Output ``y`` ``(m, C_OUT)`` (the product) in place: bias, rounding, residual sum,
    rounding."""
    m, c = y.shape
    bias = wts[p[B]:p[B] + c]
    for j in range(m):
        for ch in range(c):
            y[j, ch] = y[j, ch] + bias[ch]
    if p[OUT_Q] >= 0:
        _round_rows(y, wts, p[OUT_Q])
    if p[SKIP] >= 0:
        skip = _view(mem, p[SKIP], m, c)
        for j in range(m):
            for ch in range(c):
                y[j, ch] = skip[j, ch] + y[j, ch]
        if p[ADD_Q] >= 0:
            _round_rows(y, wts, p[ADD_Q])


@njit(cache=True, boundscheck=False)
def _shift_context(buf: np.ndarray, left: int, t: int) -> None:
    """The last ``left`` rows of ``buf`` ``(left + t, C)`` to its first rows."""
    for i in range(left):
        for c in range(buf.shape[1]):
            buf[i, c] = buf[t + i, c]


@njit(cache=True, boundscheck=False)
def _conv(p: np.ndarray, wts: np.ndarray, mem: np.ndarray, slope: float) -> None:
    t, c_in, c_out, k, s, d, g = p[T_IN], p[C_IN], p[C_OUT], p[KERNEL], p[STRIDE], p[DIL], \
        p[GROUPS]
    left = p[LEFT]
    m, cg, og = t // s, c_in // g, c_out // g
    kk = k * cg
    y = _view(mem, p[OUT], m, c_out)
    if k == 1 and g == 1 and p[PRE_ACT] == 0 and p[PRE_Q] < 0:  # the input as it is
        a = _view(mem, p[IN], t, c_in)
        np.dot(a, wts[p[W]:p[W] + kk * og].reshape((kk, og)), y)
        _epilogue(p, wts, mem, y)
        return
    buf = _view(mem, p[CTX], left + t, c_in)
    if p[PRE_ACT]:
        _activate(p, wts, mem, buf[left:], slope)
    else:
        x = _view(mem, p[IN], t, c_in)
        for j in range(t):
            for c in range(c_in):
                buf[left + j, c] = x[j, c]
        if p[PRE_Q] >= 0:
            _round_rows(buf[left:], wts, p[PRE_Q])
    if k == 1 and g == 1:
        np.dot(buf, wts[p[W]:p[W] + kk * og].reshape((kk, og)), y)
    else:
        a = _view(mem, p[COLS], m, kk)
        prod = _view(mem, p[PROD], m, og)
        for grp in range(g):  # im2col of the group's channels, product, into its columns
            for j in range(m):
                for tap in range(k):
                    r = j * s + tap * d
                    for ci in range(cg):
                        a[j, tap * cg + ci] = buf[r, grp * cg + ci]
            w0 = p[W] + grp * kk * og
            if g == 1:
                np.dot(a, wts[w0:w0 + kk * og].reshape((kk, og)), y)
            else:
                np.dot(a, wts[w0:w0 + kk * og].reshape((kk, og)), prod)
                for j in range(m):
                    for o in range(og):
                        y[j, grp * og + o] = prod[j, o]
    _epilogue(p, wts, mem, y)
    _shift_context(buf, left, t)


@njit(cache=True, boundscheck=False)
def _depthwise(p: np.ndarray, wts: np.ndarray, mem: np.ndarray, slope: float) -> None:
    """``bias + w_0 x[t] + w_1 x[t + d] + ...`` per channel, in the module's order."""
    t, c, k, d, left = p[T_IN], p[C_IN], p[KERNEL], p[DIL], p[LEFT]
    buf = _view(mem, p[CTX], left + t, c)
    _activate(p, wts, mem, buf[left:], slope)
    w = _view(wts, p[W], k, c)
    bias = wts[p[B]:p[B] + c]
    y = _view(mem, p[OUT], t, c)
    for j in range(t):
        for ch in range(c):
            y[j, ch] = bias[ch] + w[0, ch] * buf[j, ch]
        for tap in range(1, k):
            r = j + tap * d
            for ch in range(c):
                y[j, ch] = y[j, ch] + w[tap, ch] * buf[r, ch]
    if p[OUT_Q] >= 0:
        _round_rows(y, wts, p[OUT_Q])
    _shift_context(buf, left, t)


@njit(cache=True, boundscheck=False)
def _transposed(p: np.ndarray, wts: np.ndarray, mem: np.ndarray, slope: float) -> None:
    """Per group one product ``(t, cg) @ (cg, k * og)``: each input frame's ``k`` samples
    (``taps`` output frames of ``s``), rounded with their bias when quantized, kept in the
    history; output frame ``f`` sums the taps of frames ``f, f - 1, ...`` in that order."""
    t, c_in, c_out, k, s, g = p[T_IN], p[C_IN], p[C_OUT], p[KERNEL], p[STRIDE], p[GROUPS]
    keep = p[LEFT]
    cg, og = c_in // g, c_out // g
    act = _view(mem, p[ACT_BUF], t, c_in)
    _activate(p, wts, mem, act, slope)
    hist = mem[p[CTX]:p[CTX] + (keep + t) * k * c_out].reshape((keep + t, k, c_out))
    bias = wts[p[B]:p[B] + c_out]
    for grp in range(g):
        w0 = p[W] + grp * cg * k * og
        w = wts[w0:w0 + cg * k * og].reshape((cg, k * og))
        if g == 1:
            np.dot(act, w, hist[keep:].reshape((t, k * og)))
            continue
        a = _view(mem, p[COLS], t, cg)
        for j in range(t):
            for ci in range(cg):
                a[j, ci] = act[j, grp * cg + ci]
        prod = mem[p[PROD]:p[PROD] + t * k * og].reshape((t, k, og))
        np.dot(a, w, prod.reshape((t, k * og)))
        for j in range(t):
            for i in range(k):
                for o in range(og):
                    hist[keep + j, i, grp * og + o] = prod[j, i, o]
    if p[OUT_Q] >= 0:  # each frame's contribution with its bias, rounded, without it
        q = p[OUT_Q]
        qs, qz = wts[q:q + c_out], wts[q + c_out:q + 2 * c_out]
        for j in range(t):
            for i in range(k):
                for co in range(c_out):
                    b = bias[co]
                    hist[keep + j, i, co] = _fq(hist[keep + j, i, co] + b, qs[co], qz[co]) - b
    y = _view(mem, p[OUT], t * s, c_out)
    for f in range(t):
        for r in range(s):
            for co in range(c_out):
                y[f * s + r, co] = hist[keep + f, r, co]
            for i in range(1, keep + 1):
                for co in range(c_out):
                    y[f * s + r, co] = y[f * s + r, co] + hist[keep + f - i, i * s + r, co]
            for co in range(c_out):
                y[f * s + r, co] = y[f * s + r, co] + bias[co]
    for i in range(keep):
        for j in range(k):
            for co in range(c_out):
                hist[i, j, co] = hist[t + i, j, co]


@njit(cache=True, boundscheck=False)
def _frame(prog: np.ndarray, wts: np.ndarray, m: np.ndarray, slope: float) -> None:
    """One input frame (already in place) through every layer."""
    for li in range(prog.shape[0]):
        p = prog[li]
        op = p[OP]
        if op == CONV:
            _conv(p, wts, m, slope)
        elif op == DEPTHWISE:
            _depthwise(p, wts, m, slope)
        else:
            _transposed(p, wts, m, slope)


@njit(cache=True, boundscheck=False)
def run(prog: np.ndarray, wts: np.ndarray, mem: np.ndarray, x: np.ndarray, out: np.ndarray,
        in_off: int, out_off: int, slope: float) -> None:
    """``x`` ``(batch, m * frame, c_in)`` -> ``out`` ``(batch, m * frame_out, c_out)``, one
    frame at a time through every layer; ``mem`` ``(batch, size)`` is updated in place."""
    frame, c_in = prog[0, T_IN], prog[0, C_IN]
    c_out = prog[prog.shape[0] - 1, C_OUT]
    frame_out = out.shape[1] * frame // x.shape[1]
    for bi in range(x.shape[0]):
        m = mem[bi]
        for f in range(x.shape[1] // frame):
            xin = _view(m, in_off, frame, c_in)
            for i in range(frame):
                for c in range(c_in):
                    xin[i, c] = x[bi, f * frame + i, c]
            _frame(prog, wts, m, slope)
            y = _view(m, out_off, frame_out, c_out)
            for i in range(frame_out):
                for c in range(c_out):
                    out[bi, f * frame_out + i, c] = y[i, c]


@njit(cache=True, boundscheck=False)
def encode(prog: np.ndarray, wts: np.ndarray, mem: np.ndarray, x: np.ndarray,
           in_off: int, out_off: int, slope: float, cbs: np.ndarray, cbs_t: np.ndarray,
           norms: np.ndarray, codes: np.ndarray) -> None:
    """Audio ``x`` ``(batch, m * frame)`` -> ``codes`` ``(batch, m, n_q)``: each frame through
    the (encoder) plan, then :func:`rvq_encode` of its latent (one output step)."""
    frame = prog[0, T_IN]
    d = prog[prog.shape[0] - 1, C_OUT]
    for bi in range(x.shape[0]):
        m = mem[bi]
        for f in range(x.shape[1] // frame):
            for i in range(frame):
                m[in_off + i] = x[bi, f * frame + i]
            _frame(prog, wts, m, slope)
            z = m[out_off:out_off + d].copy().reshape((1, d))
            rvq_encode(z, cbs, cbs_t, norms, codes[bi, f:f + 1])


@njit(cache=True, boundscheck=False)
def decode(prog: np.ndarray, wts: np.ndarray, mem: np.ndarray, codes: np.ndarray,
           in_off: int, out_off: int, slope: float, cbs: np.ndarray, out: np.ndarray) -> bool:
    """Codes ``(batch, n_q, m)`` -> audio ``out`` ``(batch, m * frame_out)``: the code vectors
    summed (:func:`rvq_decode`) into the (decoder) plan's input, one frame at a time. False
    (nothing run) when a code is out of range."""
    k = cbs.shape[1]
    for bi in range(codes.shape[0]):
        for q in range(codes.shape[1]):
            for f in range(codes.shape[2]):
                if codes[bi, q, f] < 0 or codes[bi, q, f] >= k:
                    return False
    frame_out = out.shape[1] // codes.shape[2]
    d = cbs.shape[2]
    row = np.empty((1, codes.shape[1]), np.int64)
    for bi in range(codes.shape[0]):
        m = mem[bi]
        for f in range(codes.shape[2]):
            for q in range(codes.shape[1]):
                row[0, q] = codes[bi, q, f]
            rvq_decode(row, cbs, _view(m, in_off, 1, d))
            _frame(prog, wts, m, slope)
            for i in range(frame_out):
                out[bi, f * frame_out + i] = m[out_off + i]
    return True


@njit(cache=True, boundscheck=False)
def rvq_encode(z: np.ndarray, cbs: np.ndarray, cbs_t: np.ndarray, norms: np.ndarray,
               codes: np.ndarray) -> None:
    """Residual VQ codes of the rows of ``z`` ``(N, D)`` (overwritten with the residual) with
    the first ``codes.shape[1]`` codebooks ``cbs`` ``(Q, K, D)`` (``cbs_t``: ``(Q, D, K)``),
    as :meth:`ResidualVectorQuantizer.encode` computes them: ``|c|^2 - (2 r) . c``, first
    minimum, ``r - c``."""
    n, d = z.shape
    k = cbs.shape[1]
    two = np.empty_like(z)
    prod = np.empty((n, k), np.float32)
    for q in range(codes.shape[1]):
        for i in range(n):
            for j in range(d):
                two[i, j] = _f(2.0) * z[i, j]
        np.dot(two, cbs_t[q], prod)
        for i in range(n):
            best, best_v = 0, norms[q, 0] - prod[i, 0]
            for j in range(1, k):
                v = norms[q, j] - prod[i, j]
                if v < best_v:
                    best, best_v = j, v
            codes[i, q] = best
            for j in range(d):
                z[i, j] = z[i, j] - cbs[q, best, j]


@njit(cache=True, boundscheck=False)
def rvq_decode(codes: np.ndarray, cbs: np.ndarray, out: np.ndarray) -> None:
    """``out`` ``(N, D)`` = the code vectors of ``codes`` ``(N, n_q)`` summed in codebook
    order (as :meth:`ResidualVectorQuantizer.decode`)."""
    n, d = out.shape
    for i in range(n):
        for j in range(d):
            out[i, j] = cbs[0, codes[i, 0], j]
        for q in range(1, codes.shape[1]):
            for j in range(d):
                out[i, j] = out[i, j] + cbs[q, codes[i, q], j]
