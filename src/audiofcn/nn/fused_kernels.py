"""Fused element-wise kernels for the streaming hot path (:mod:`audiofcn.nn.stream_plan`).

One 20 ms frame of the codec decoder is ~30 small matrix products (``torch.addmm``, MKL) and,
between them, ~28 ELUs, im2col copies and context shifts on a few thousand values each. As
separate torch ops that glue costs as much as the products (four ops per ELU, ~1 us of dispatch
each, and ``torch.exp`` at ~1 ns a value). The kernels here do one layer's glue in one pass:

* ``shifted_elu``: ``elu(x) + 1`` (``exp(x)`` for ``x <= 0``) with a vectorisable ``exp``:
  Cody-Waite range reduction, the Cephes degree-5 polynomial and ``2^k`` built from its bits,
  within ~1 ulp of ``torch.exp`` (float32);
* ``conv_prep``: write the (optionally shifted-ELU'd) chunk into a convolution's context buffer,
  carry the next chunk's context into the other buffer, and optionally ``x + bias`` (a residual
  unit's skip with the second convolution's bias);
* ``bias_act`` (bias, then optionally the shifted ELU, in place), ``add_into``, and
  ``overlap_add`` (a two-tap transposed convolution's overlap-add with bias and tail);
* ``rvq_encode``: a frame's residual VQ codes in one call (12 codebooks of 1024: 55 us instead
  of ~200 us as four torch ops per codebook).

The matrix products of the fused path go through numpy's BLAS (``np.dot`` with ``out=``): on
this machine numpy's OpenBLAS runs its AVX-512 kernels where torch's MKL runs AVX2 ones on an
AMD CPU, 1.1-2.3x faster at these shapes. :func:`blas_one_thread` keeps those products on the
calling thread while a plan steps (OpenBLAS would otherwise hand ~1 M multiply-add products to
its worker threads, which on a busy machine made a 20 ms frame take 100 ms).

The kernels are compiled by numba (already installed with librosa; its bundled LLVM needs no system
compiler) on first use, cached on disk when the package directory is writable. Without numba,
or with ``AUDIOFCN_NO_NUMBA=1``, :data:`AVAILABLE` is False and the plans use torch ops.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

AVAILABLE = False
_blas_libs: list[Any] | None = None


def blas_one_thread() -> list[tuple[Any, int]]:
    """Set numpy's BLAS libraries to one thread; returns ``(library, threads)`` to restore
    with :func:`blas_restore` (empty when they were at one thread already)."""
    global _blas_libs
    if _blas_libs is None:
        try:
            from threadpoolctl import ThreadpoolController

            _blas_libs = [c for c in ThreadpoolController().lib_controllers
                          if c.user_api == "blas"]
        except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
            _blas_libs = []
    changed = []
    for lib in _blas_libs:
        n = lib.get_num_threads()
        if n != 1:
            lib.set_num_threads(1)
            changed.append((lib, n))
    return changed


def blas_restore(changed: list[tuple[Any, int]]) -> None:
    for lib, n in changed:
        lib.set_num_threads(n)


def refresh_blas() -> None:
    """Look for BLAS libraries again on the next :func:`blas_one_thread` (after a module
    loaded another one, e.g. scipy's, which numba's ``np.dot`` calls)."""
    global _blas_libs
    _blas_libs = None


# One switch for every numba kernel module: AUDIOFCN_NO_NUMBA=1 keeps the torch/numpy paths.
NUMBA_WANTED = os.environ.get("AUDIOFCN_NO_NUMBA", "") not in ("1", "true", "yes")

shifted_elu: Any = None
conv_prep: Any = None
bias_act: Any = None
add_into: Any = None
overlap_add: Any = None
rvq_encode: Any = None

if NUMBA_WANTED:
    try:
        from llvmlite import ir
        from numba import njit, types
        from numba.extending import intrinsic

        @intrinsic
        def _f32_from_bits(typingctx: Any, bits: Any) -> Any:  # noqa: ARG001
            sig = types.float32(types.int32)

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
                return builder.bitcast(args[0], ir.FloatType())
            return sig, codegen

        _f = np.float32
        _LOG2E, _MAGIC = _f(1.4426950408889634), _f(12582912.0)  # 1.5 * 2**23: round to int
        _C1, _C2 = _f(0.693359375), _f(-2.12194440e-4)  # ln 2 = C1 + C2 (Cody-Waite)
        _P0, _P1, _P2 = _f(1.9875691500e-4), _f(1.3981999507e-3), _f(8.3334519073e-3)
        _P3, _P4, _P5 = _f(4.1665795894e-2), _f(1.6666665459e-1), _f(5.0000001201e-1)
        _FLAGS = {"contract"}  # fused multiply-adds only; no other reassociation

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False, inline="always")
        def _shifted_elu1(v: float) -> float:
            t = max(min(v, _f(0.0)), _f(-87.0))  # exp(-87) ~ 1.6e-38: smallest normal range
            k = (t * _LOG2E + _MAGIC) - _MAGIC  # round(t / ln 2)
            r = t - k * _C1 - k * _C2
            p = (((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5) * (r * r) \
                + r + _f(1.0)
            e = p * _f32_from_bits((np.int32(k) + np.int32(127)) << 23)
            return v + _f(1.0) if v > _f(0.0) else e

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def shifted_elu(x: np.ndarray, out: np.ndarray) -> None:  # noqa: F811
            """``out = elu(x) + 1`` for 1-D float32 arrays (``out`` may be ``x``)."""
            for i in range(x.shape[0]):
                out[i] = _shifted_elu1(x[i])

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def conv_prep(x: np.ndarray, buf: np.ndarray, nxt: np.ndarray, elu: bool,  # noqa: F811
                      bias: np.ndarray, xb: np.ndarray, with_bias: bool) -> None:
            """Convolution glue for a chunk ``x`` ``(b, n, c)``: ``buf`` ``(b, left + n, c)``
            holds the left context in its first rows; the chunk (its ``elu + 1`` when ``elu``)
            goes after it; ``nxt`` (the other buffer) gets the next chunk's context; with
            ``with_bias``, ``xb = x + bias``. (The im2col copy is torch's: this numba build's
            copy loops do not vectorise, torch's strided copy is 2x faster.)"""
            b, n, c = x.shape
            left = buf.shape[1] - n
            for bi in range(b):
                for t in range(n):
                    for ch in range(c):
                        v = x[bi, t, ch]
                        buf[bi, left + t, ch] = _shifted_elu1(v) if elu else v
                        if with_bias:
                            xb[bi, t, ch] = v + bias[ch]
                for t in range(left):
                    for ch in range(c):
                        nxt[bi, t, ch] = buf[bi, n + t, ch]

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def bias_act(y: np.ndarray, bias: np.ndarray, elu: bool) -> None:  # noqa: F811
            """In place on ``y`` ``(rows, c)``: ``y + bias``, then ``elu(.) + 1`` if ``elu``."""
            rows, c = y.shape
            for r in range(rows):
                for ch in range(c):
                    v = y[r, ch] + bias[ch]
                    y[r, ch] = _shifted_elu1(v) if elu else v

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def add_into(y: np.ndarray, a: np.ndarray) -> None:  # noqa: F811
            """``y += a`` (1-D)."""
            for i in range(y.shape[0]):
                y[i] += a[i]

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def overlap_add(y: np.ndarray, bias: np.ndarray, tail: np.ndarray,  # noqa: F811
                        out: np.ndarray) -> None:
            """Two-tap transposed-convolution overlap-add. ``y`` ``(b, n, 2 * f)``: each
            frame's contribution to its own and the next output frame; ``bias`` ``(2 * f,)``;
            ``tail`` ``(b, f)``: the previous chunk's second tap (updated); ``out``
            ``(b, n, f)``."""
            b, n, f2 = y.shape
            f = f2 // 2
            for bi in range(b):
                for i in range(f):
                    out[bi, 0, i] = y[bi, 0, i] + bias[i] + tail[bi, i]
                for t in range(1, n):
                    for i in range(f):
                        out[bi, t, i] = y[bi, t, i] + bias[i] + y[bi, t - 1, f + i] + bias[f + i]
                for i in range(f):
                    tail[bi, i] = y[bi, n - 1, f + i] + bias[f + i]

        @njit(cache=True, fastmath=_FLAGS, boundscheck=False)
        def rvq_encode(z: np.ndarray, cbs_t: np.ndarray, cbs: np.ndarray,  # noqa: F811
                       norms: np.ndarray, codes: np.ndarray) -> None:
            """Residual VQ codes of the rows of ``z`` ``(N, D)`` with the first
            ``codes.shape[1]`` codebooks: ``cbs`` ``(Q, K, D)``, ``cbs_t`` the same as
            ``(Q, D, K)``, ``norms`` ``(Q, K)`` their squared norms; nearest code by
            ``|c|^2 - 2 r.c`` (first index on ties, as ``argmin``)."""
            n, d = z.shape
            k = cbs.shape[1]
            r = np.empty(d, np.float32)
            dist = np.empty(k, np.float32)
            for row in range(n):
                for i in range(d):
                    r[i] = z[row, i]
                for q in range(codes.shape[1]):
                    for j in range(k):
                        dist[j] = norms[q, j]
                    for i in range(d):
                        a = _f(-2.0) * r[i]
                        for j in range(k):
                            dist[j] += a * cbs_t[q, i, j]
                    best = 0
                    for j in range(1, k):
                        if dist[j] < dist[best]:
                            best = j
                    codes[row, q] = best
                    for i in range(d):
                        r[i] -= cbs[q, best, i]

        AVAILABLE = True
    except ImportError:  # pragma: no cover - numba comes with librosa
        AVAILABLE = False
    except Exception as err:  # pragma: no cover - no numba, or it cannot compile/cache here
        import warnings

        warnings.warn(f"audiofcn fused kernels off, torch ops instead: {err!r}", stacklevel=1)
        AVAILABLE = False
