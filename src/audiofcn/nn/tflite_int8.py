"""TFLite's int8 arithmetic, bit for bit, as vectorised torch ops (for ports of int8 graphs).

TFLite's built-in (reference and optimized) int8 kernels compute an exact int32 accumulator and
requantize it in fixed point: the real rescaling factor is stored as a 31-bit multiplier and a
power-of-two shift (``QuantizeMultiplier``, tensorflow/lite/kernels/internal/
quantization_util.cc), applied by ``MultiplyByQuantizedMultiplier`` (kernels/internal/common.h:
``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``, two roundings). These
functions reproduce that arithmetic on int64 tensors, so a port gives the same int8 values as the
interpreter, not merely values within one rounding step.

Tensors: integer tensors are ``torch.int64`` holding int8/int32 values; float tensors are
``float32`` as in the graph. Quantization parameters are float32 scales (as stored in the
flatbuffer) and integer zero points, per tensor or broadcastable per channel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from audiofcn.nn.fused_kernels import NUMBA_WANTED

INT8_MIN, INT8_MAX = -128, 127

# The same arithmetic fused into one pass per tensor by numba (as audiofcn.nn.fused_kernels),
# used by requantize / leaky_relu / add when available; the torch ops below are the
# specification and the fallback (AUDIOFCN_NO_NUMBA=1), tested equal.
_requant_rows: Any = None
_leaky_flat: Any = None
_add_flat: Any = None
_rvq_encode: Any = None
_conv_ref: Any = None
_xnn_requant_rows: Any = None
_xnn_leaky_flat: Any = None
_xnn_add_flat: Any = None
if NUMBA_WANTED:
    try:
        from llvmlite import ir
        from numba import njit, types
        from numba.extending import intrinsic

        @intrinsic
        def _fma32(typingctx: Any, a: Any, b: Any, c: Any) -> Any:  # noqa: ARG001
            """float32 fused multiply-add ``a * b + c`` with one rounding (``llvm.fma``)."""
            sig = types.float32(types.float32, types.float32, types.float32)

            def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:  # noqa: ARG001
                f = ir.FloatType()
                fn = builder.module.declare_intrinsic("llvm.fma", [f], ir.FunctionType(f, [f] * 3))
                return builder.call(fn, args)
            return sig, codegen

        @njit(cache=True, inline="always")
        def _mbqm(v: int, m: int, s: int) -> int:  # pragma: no cover - compiled
            if s > 0:
                v = v << s
            t = (v * m + (1 << 30)) >> 31
            if s < 0:
                r = -s
                t = (t + ((1 << r) >> 1) - (1 if t < 0 else 0)) >> r
            return t

        @njit(cache=True)
        def _requant_rows(x, mult, shift, zp, out):  # pragma: no cover - compiled
            for r in range(x.shape[0]):
                m, s, z = mult[r], shift[r], zp[r]
                for i in range(x.shape[1]):
                    out[r, i] = min(max(_mbqm(x[r, i], m, s) + z, -128), 127)

        @njit(cache=True)
        def _leaky_flat(q, zin, m_id, s_id, m_a, s_a, zout, out):  # pragma: no cover
            for i in range(q.shape[0]):
                v = q[i] - zin
                t = _mbqm(v, m_id, s_id) if v >= 0 else _mbqm(v, m_a, s_a)
                out[i] = min(max(t + zout, -128), 127)

        @njit(cache=True)
        def _rvq_encode(z, books, out):  # pragma: no cover - compiled
            n_q, k_books, dim = out.shape[1], books.shape[1], books.shape[2]
            r = np.empty(dim, np.float32)
            for n in range(z.shape[0]):
                for d in range(dim):
                    r[d] = z[n, d]
                for i in range(n_q):
                    best, idx = np.float32(np.inf), 0
                    for k in range(k_books):
                        acc = np.float32(0.0)
                        for d in range(dim):
                            diff = r[d] - books[i, k, d]
                            acc = acc + diff * diff
                        if acc < best:
                            best, idx = acc, k
                    out[n, i] = idx
                    for d in range(dim):
                        u = r[d] + (books[i, idx, d] - r[d])
                        r[d] = r[d] - u

        @njit(cache=True)
        def _conv_ref(x, wt, bias, stride, dil, fma, out):  # pragma: no cover - compiled
            # per output: taps outer, input channels inner, in float32, bias last; the
            # innermost loop runs over output channels (weights as (groups, k, in/g, out/g)),
            # four output frames at a time so each weight row is loaded once for four
            groups, k, ci, co = wt.shape
            n_t = out.shape[2]
            a0 = np.empty(co, np.float32)
            a1 = np.empty(co, np.float32)
            a2 = np.empty(co, np.float32)
            a3 = np.empty(co, np.float32)
            for b in range(x.shape[0]):
                for g in range(groups):
                    for t in range(0, n_t - 3, 4):
                        for o in range(co):
                            init = bias[g * co + o] if fma else np.float32(0.0)
                            a0[o] = init
                            a1[o] = init
                            a2[o] = init
                            a3[o] = init
                        for j in range(k):
                            pos = t * stride + j * dil
                            for i in range(ci):
                                c = g * ci + i
                                x0 = x[b, c, pos]
                                x1 = x[b, c, pos + stride]
                                x2 = x[b, c, pos + 2 * stride]
                                x3 = x[b, c, pos + 3 * stride]
                                if fma:
                                    for o in range(co):
                                        w = wt[g, j, i, o]
                                        a0[o] = _fma32(x0, w, a0[o])
                                        a1[o] = _fma32(x1, w, a1[o])
                                        a2[o] = _fma32(x2, w, a2[o])
                                        a3[o] = _fma32(x3, w, a3[o])
                                else:
                                    for o in range(co):
                                        w = wt[g, j, i, o]
                                        a0[o] = a0[o] + x0 * w
                                        a1[o] = a1[o] + x1 * w
                                        a2[o] = a2[o] + x2 * w
                                        a3[o] = a3[o] + x3 * w
                        for o in range(co):
                            bo = np.float32(0.0) if fma else bias[g * co + o]
                            out[b, g * co + o, t] = a0[o] + bo
                            out[b, g * co + o, t + 1] = a1[o] + bo
                            out[b, g * co + o, t + 2] = a2[o] + bo
                            out[b, g * co + o, t + 3] = a3[o] + bo
                    for t in range(n_t - n_t % 4, n_t):
                        for o in range(co):
                            a0[o] = bias[g * co + o] if fma else np.float32(0.0)
                        for j in range(k):
                            pos = t * stride + j * dil
                            for i in range(ci):
                                x0 = x[b, g * ci + i, pos]
                                for o in range(co):
                                    if fma:
                                        a0[o] = _fma32(x0, wt[g, j, i, o], a0[o])
                                    else:
                                        a0[o] = a0[o] + x0 * wt[g, j, i, o]
                        for o in range(co):
                            out[b, g * co + o, t] = a0[o] + (np.float32(0.0) if fma
                                                             else bias[g * co + o])

        @njit(cache=True)
        def _xnn_requant_rows(x, scale, zp, out):  # pragma: no cover - compiled
            for r in range(x.shape[0]):
                s, z = scale[r], zp[r]
                hi = np.float32(127 - z)
                for i in range(x.shape[1]):
                    v = min(np.float32(x[r, i]) * s, hi)
                    out[r, i] = min(max(int(np.rint(v)) + z, -128), 127)

        @njit(cache=True)
        def _xnn_leaky_flat(q, zin, m_pos, m_neg, zout, out):  # pragma: no cover - compiled
            for i in range(q.shape[0]):
                v = zin - q[i]
                m = m_neg if v >= 0 else m_pos
                out[i] = min(max(((v * m + 128) >> 8) + zout, -128), 127)

        @njit(cache=True)
        def _xnn_add_flat(q1, ma, q2, mb, bias, shift, zo, out):  # pragma: no cover
            for i in range(q1.shape[0]):
                out[i] = min(max(((bias + q1[i] * ma + q2[i] * mb) >> shift) + zo, -128), 127)

        @njit(cache=True)
        def _add_flat(q1, z1, m1, s1, q2, z2, m2, s2, mo, so, zo, out):  # pragma: no cover
            for i in range(q1.shape[0]):
                a = _mbqm((q1[i] - z1) << 20, m1, s1)
                b = _mbqm((q2[i] - z2) << 20, m2, s2)
                out[i] = min(max(_mbqm(a + b, mo, so) + zo, -128), 127)
    except ImportError:  # pragma: no cover - numba is a core dependency
        pass

FUSED = _requant_rows is not None


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy())


def quantize_multiplier(real: np.ndarray | float) -> tuple[torch.Tensor, torch.Tensor]:
    """``QuantizeMultiplier``: real factors (float64) -> (int32 multiplier, shift), such that
    ``real ~= multiplier * 2**(shift - 31)``, elementwise. Returns int64 tensors."""
    r = np.atleast_1d(np.asarray(real, np.float64))
    frac, shift = np.frexp(r)  # r = frac * 2**shift, frac in [0.5, 1)
    q = np.sign(frac) * np.floor(np.abs(frac) * (1 << 31) + 0.5)  # std::round: half away
    carry = q == (1 << 31)
    q = np.where(carry, q / 2, q)
    shift = np.where(carry, shift + 1, shift)
    tiny = shift < -31
    q = np.where(tiny | (r == 0), 0, q)
    shift = np.where(tiny | (r == 0), 0, shift)
    return torch.from_numpy(q.astype(np.int64)), torch.from_numpy(shift.astype(np.int64))


def saturating_rounding_doubling_high_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``SaturatingRoundingDoublingHighMul`` of int32 values (int64 tensors): the high 32 bits
    of ``2 * a * b``, rounded to nearest. The kernel's nudge (``+2**30``, or ``1 - 2**30`` for
    a negative product, then division truncating toward zero) rounds ties toward +infinity on
    both signs, i.e. ``floor((a * b + 2**30) / 2**31)``. Saturates the one overflow case."""
    out = (a * b + (1 << 30)) >> 31
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return out.masked_fill(overflow, (1 << 31) - 1)


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor | int) -> torch.Tensor:
    """``RoundingDivideByPOT``: ``x / 2**exponent`` (exponent >= 0) rounded to nearest, ties
    away from zero (the kernel's mask/threshold form, as one add and one shift)."""
    e = torch.as_tensor(exponent, dtype=torch.int64)
    nudge = (torch.ones_like(e) << e) >> 1
    return (x + nudge - (x < 0).to(torch.int64) * (e > 0).to(torch.int64)) >> e


def multiply_by_quantized_multiplier(x: torch.Tensor, multiplier: torch.Tensor,
                                     shift: torch.Tensor) -> torch.Tensor:
    """``MultiplyByQuantizedMultiplier`` (the double-rounding form TFLite builds by default):
    ``x * multiplier * 2**(shift - 31)`` rounded as the kernels do. All int64 tensors;
    ``multiplier`` positive (as :func:`quantize_multiplier` gives)."""
    left = shift.clamp(min=0)
    if bool((left > 0).any()):
        x = x * (torch.ones_like(left) << left)
    return rounding_divide_by_pot((x * multiplier + (1 << 30)) >> 31, (-shift).clamp(min=0))


def _scalar(v: torch.Tensor | float) -> float:
    return float(v.reshape(-1)[0]) if isinstance(v, torch.Tensor) else float(v)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """QUANTIZE float32 -> int8 (``AffineQuantize``): ``round(x / scale) + zero_point`` with the
    division in float32 (a float64 one differs at near-ties: -57.22405 / 12.716455 is -4.5 in
    float32, which TFLite rounds to -5, and -4.49999993 in float64) and ``TfLiteRound`` (ties
    away from zero), clamped to int8. ``scale`` and ``zero_point`` broadcast against ``x``."""
    v = x.to(torch.float32) / scale.to(torch.float32)
    r = torch.sign(v) * torch.floor(v.abs() + 0.5)
    return (r.to(torch.int64) + zero_point.to(torch.int64)).clamp(INT8_MIN, INT8_MAX)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """DEQUANTIZE int8 -> float32: ``float32(scale * (q - zero_point))``, the exact product
    rounded once (a float32 multiply of a float32 scale by an int8 difference is exactly
    that)."""
    return (q - zero_point.to(torch.int64)).to(torch.float32) * scale.to(torch.float32)


def recover(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """The int8 values behind a float32 tensor that :func:`dequantize` produced (exact: the
    float32 quotient is within an ulp of an integer of magnitude <= 255)."""
    return torch.round(x / scale.to(torch.float32)).to(torch.int64) + zero_point.to(torch.int64)


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor,
               zero_point: torch.Tensor, _fused: bool = True) -> torch.Tensor:
    """int32 accumulator (bias included) -> int8: the last step of CONV_2D,
    DEPTHWISE_CONV_2D and TRANSPOSE_CONV. Per-channel ``multiplier``/``shift`` broadcast."""
    if FUSED and _fused and acc.dim() >= 2:
        rows = (*acc.shape[:-1], 1)
        flat = _np(acc.reshape(-1, acc.shape[-1]))
        out = np.empty_like(flat)
        _requant_rows(flat, *(_np(torch.broadcast_to(torch.as_tensor(v).to(torch.int64), rows)
                                  .reshape(-1)) for v in (multiplier, shift, zero_point)), out)
        return torch.from_numpy(out).view(acc.shape)
    y = multiply_by_quantized_multiplier(acc, multiplier, shift) + zero_point.to(torch.int64)
    return y.clamp(INT8_MIN, INT8_MAX)


def conv_multipliers(in_scale: torch.Tensor | float, weight_scale: torch.Tensor,
                     out_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel requantization of a conv (``PopulateConvolutionQuantizationParams``):
    ``in_scale * weight_scale / out_scale`` in float64 from float32 scales."""
    real = (_scalar(in_scale) * weight_scale.detach().double().cpu().numpy()
            / out_scale.detach().double().cpu().numpy())
    return quantize_multiplier(real)


def exact_float_dtype(x: torch.Tensor, weight: torch.Tensor, terms: int) -> torch.dtype:
    """float32 when every partial sum of ``terms`` products of ``x`` and ``weight`` (integer
    valued) stays below 2**24 in magnitude, so any summation order is exact; else float64
    (exact below 2**53)."""
    bound = int(x.abs().max()) * int(weight.abs().max()) * terms if x.numel() else 0
    return torch.float32 if bound < (1 << 24) else torch.float64


def conv1d_acc(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, dilation: int = 1,
               groups: int = 1) -> torch.Tensor:
    """Exact int32 accumulator of a 1-D conv: ``x`` = input minus its zero point, ``weight`` =
    int8 weights, both int64; computed as a float conv of integer values (see
    :func:`exact_float_dtype`)."""
    dt = exact_float_dtype(x, weight, weight.shape[1] * weight.shape[2])
    acc = F.conv1d(x.to(dt), weight.to(dt), None, stride, 0, dilation, groups)
    return acc.round().to(torch.int64)


def conv_transpose1d_acc(x: torch.Tensor, weight: torch.Tensor, stride: int,
                         groups: int = 1) -> torch.Tensor:
    """Exact int32 accumulator of a transposed 1-D conv (``weight`` ``(in, out/groups, k)``),
    as :func:`conv1d_acc`."""
    dt = exact_float_dtype(x, weight, weight.shape[0] // groups * weight.shape[2])
    acc = F.conv_transpose1d(x.to(dt), weight.to(dt), None, stride, groups=groups)
    return acc.round().to(torch.int64)


def add(q1: torch.Tensor, s1: float, z1: int, q2: torch.Tensor, s2: float, z2: int,
        s_out: float, z_out: int, _fused: bool = True) -> torch.Tensor:
    """ADD of two int8 tensors (``reference_integer_ops::AddElementwise``, left shift 20):
    each input rescaled to ``2 * max(s1, s2)`` in fixed point, summed, rescaled to the output."""
    left_shift = 20
    twice_max = 2.0 * max(float(np.float32(s1)), float(np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(np.float32(s1)) / twice_max)
    m2, sh2 = quantize_multiplier(float(np.float32(s2)) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(s_out))))
    if FUSED and _fused:
        a1, a2 = torch.broadcast_tensors(q1, q2)
        out = np.empty(a1.numel(), np.int64)
        _add_flat(_np(a1.reshape(-1)), z1, int(m1), int(sh1), _np(a2.reshape(-1)), z2, int(m2),
                  int(sh2), int(mo), int(sho), z_out, out)
        return torch.from_numpy(out).view(a1.shape)
    a = multiply_by_quantized_multiplier((q1 - z1) << left_shift, m1, sh1)
    b = multiply_by_quantized_multiplier((q2 - z2) << left_shift, m2, sh2)
    return (multiply_by_quantized_multiplier(a + b, mo, sho) + z_out).clamp(INT8_MIN, INT8_MAX)


def leaky_relu(q: torch.Tensor, s_in: float, z_in: int, s_out: float, z_out: int,
               alpha: float, _fused: bool = True) -> torch.Tensor:
    """LEAKY_RELU on int8 (``reference_ops::QuantizeLeakyRelu``): the identity and the slope
    each a fixed-point multiplier; the factors are computed in float32 as in the kernel's
    Prepare."""
    f32 = np.float32
    m_id, sh_id = quantize_multiplier(float(f32(s_in) / f32(s_out)))
    m_a, sh_a = quantize_multiplier(float(f32(s_in) * f32(alpha) / f32(s_out)))
    if FUSED and _fused:
        out = np.empty(q.numel(), np.int64)
        _leaky_flat(_np(q.reshape(-1)), z_in, int(m_id), int(sh_id), int(m_a), int(sh_a), z_out,
                    out)
        return torch.from_numpy(out).view(q.shape)
    v = q - z_in
    y = torch.where(v >= 0, multiply_by_quantized_multiplier(v, m_id, sh_id),
                    multiply_by_quantized_multiplier(v, m_a, sh_a))
    return (y + z_out).clamp(INT8_MIN, INT8_MAX)


def rvq_encode(z: torch.Tensor, codebooks: torch.Tensor, n_q: int,
               _fused: bool = True) -> torch.Tensor:
    """Residual VQ codes as Lyra's quantizer graph computes them in float32: for each
    quantizer the squared distances ``SUM(SQUARED_DIFFERENCE(r, c))`` summed in order over the
    dimension (the reference reduction), the first minimum (``ARG_MIN``), and the residual
    updated through the straight-through form ``r - (r + (c - r))`` that the graph keeps.
    ``z`` ``(N, D)``, ``codebooks`` ``(Q, K, D)`` -> ``(N, n_q)`` int64."""
    z = z.detach().to(torch.float32).contiguous()
    books = codebooks.detach().to(torch.float32).contiguous()
    if FUSED and _fused:
        out = np.empty((z.shape[0], n_q), np.int64)
        _rvq_encode(z.numpy(), books.numpy(), out)
        return torch.from_numpy(out)
    r, codes = z.clone(), []
    for i in range(n_q):
        diff = r[:, None, :] - books[i][None]
        sq = diff * diff
        acc = torch.zeros(sq.shape[:2], dtype=torch.float32)
        for d in range(sq.shape[2]):
            acc = acc + sq[:, :, d]
        idx = acc.argmin(1)
        c = books[i].index_select(0, idx)
        r = r - (r + (c - r))
        codes.append(idx)
    return torch.stack(codes, 1) if codes else torch.zeros(z.shape[0], 0, dtype=torch.int64)


def rvq_decode(codes: torch.Tensor, codebooks: torch.Tensor) -> torch.Tensor:
    """Sum of the code vectors in quantizer order (as the quantizer graph adds them):
    ``(B, n_q, T)`` -> ``(B, D, T)``."""
    out = torch.zeros(codes.shape[0], codes.shape[2], codebooks.shape[2])
    for i in range(codes.shape[1]):
        out = out + F.embedding(codes[:, i], codebooks[i])
    return out.permute(0, 2, 1)


def conv1d_reference_order(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           stride: int = 1, dilation: int = 1, groups: int = 1,
                           xnnpack: bool = False, _fused: bool = True) -> torch.Tensor:
    """A float32 1-D conv (no padding) summed as TFLite's reference float kernels sum
    (``reference_ops::Conv`` / ``DepthwiseConv``): for each output, products added one by one,
    taps outer and input channels inner, from zero, the bias added last. Gives their float32
    results bit for bit (the kernels are built without fused multiply-adds), so values the
    original rounds to int8 next round the same way. ``xnnpack=True``: XNNPACK's f32 GEMM
    order instead (the accumulator starts at the bias, same tap/channel order, each step a
    fused multiply-add, i.e. one rounding: ``llvm.fma`` in the numba kernel; the torch fallback
    adds the exact float64 product, which differs only in a double rounding of probability
    about 2**-29 a step).
    ``(B, in, T)`` -> ``(B, out, T')``."""
    b, _, t_in = x.shape
    cout, ci, k = weight.shape
    t = (t_in - (k - 1) * dilation - 1) // stride + 1
    x = x.detach().to(torch.float32).contiguous()
    w = weight.detach().to(torch.float32).contiguous()
    bias = bias.detach().to(torch.float32).contiguous()
    if FUSED and _fused:
        out = np.empty((b, cout, max(t, 0)), np.float32)
        wt = w.view(groups, cout // groups, ci, k).permute(0, 3, 2, 1).contiguous()
        _conv_ref(x.numpy(), wt.numpy(), bias.numpy(), stride, dilation, xnnpack, out)
        return torch.from_numpy(out)
    co = cout // groups
    xg = x.view(b, groups, ci, t_in)
    wg = w.view(groups, co, ci, k)
    total = x.new_zeros(b, groups, co, t)
    if xnnpack:
        total = total + bias.view(1, groups, co, 1)
    for j in range(k):
        xs = xg[..., j * dilation:j * dilation + (t - 1) * stride + 1:stride]
        for i in range(ci):
            if xnnpack:
                total = (total.double() + xs[:, :, i:i + 1].double()
                         * wg[None, :, :, i, j, None].double()).float()
            else:
                total = total + xs[:, :, i:i + 1] * wg[None, :, :, i, j, None]
    if xnnpack:
        return total.view(b, cout, t)
    return (total + bias.view(1, groups, co, 1)).view(b, cout, t)


# --- XNNPACK's int8 ("qs8") arithmetic, as TFLite's default delegate runs these ops ----------
def _rne(v: torch.Tensor) -> torch.Tensor:
    """Round half to even (``lrintf`` / ``cvtps2dq``) of a float32 tensor, as int64."""
    return torch.round(v).to(torch.int64)  # torch.round rounds half to even


def xnn_requantize(acc: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
                   _fused: bool = True) -> torch.Tensor:
    """XNNPACK's "fp32" requantization of an int32 accumulator: ``float32(acc) * scale``
    (``scale = in_scale * weight_scale / out_scale`` in float32), rounded half to even, plus
    the zero point, clamped to int8."""
    if FUSED and _fused and acc.dim() >= 2:
        rows = (*acc.shape[:-1], 1)
        flat = _np(acc.reshape(-1, acc.shape[-1]))
        out = np.empty_like(flat)
        sc = _np(torch.broadcast_to(scale.to(torch.float32), rows).reshape(-1))
        zp = _np(torch.broadcast_to(torch.as_tensor(zero_point).to(torch.int64), rows)
                 .reshape(-1))
        _xnn_requant_rows(flat, sc, zp, out)
        return torch.from_numpy(out).view(acc.shape)
    v = acc.to(torch.float32) * scale.to(torch.float32)
    z = zero_point.to(torch.int64)
    v = torch.minimum(v, (INT8_MAX - z).to(torch.float32))
    return (_rne(v) + z).clamp(INT8_MIN, INT8_MAX)


def xnn_conv_scale(in_scale: float, weight_scale: torch.Tensor, out_scale: torch.Tensor
                   ) -> torch.Tensor:
    """Per-channel float32 requantization scale ``in_scale * weight_scale / out_scale``."""
    f32 = torch.float32
    return torch.tensor(in_scale, dtype=f32) * weight_scale.to(f32) / out_scale.to(f32)


def xnn_quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """XNNPACK's float32 -> int8 convert: ``x * (1 / scale)`` in float32, rounded half to
    even, plus the zero point, clamped."""
    inv = 1.0 / scale.to(torch.float32)
    return (_rne(x.to(torch.float32) * inv) + zero_point.to(torch.int64)).clamp(INT8_MIN,
                                                                                  INT8_MAX)


def xnn_leaky_relu(q: torch.Tensor, s_in: float, z_in: int, s_out: float, z_out: int,
                   alpha: float, _fused: bool = True) -> torch.Tensor:
    """XNNPACK's int8 leaky ReLU: 8-bit fixed-point multipliers ``round(256 * s_in / s_out)``
    (times ``alpha`` for negative inputs), ``(x - z_in) * m + 128 >> 8`` plus the zero point."""
    f32 = np.float32
    pos = f32(s_in) / f32(s_out)
    neg = pos * f32(alpha)
    m_pos = int(np.rint(f32(-256.0) * pos))
    m_neg = int(np.rint(f32(-256.0) * neg))
    if FUSED and _fused:
        out = np.empty(q.numel(), np.int64)
        _xnn_leaky_flat(_np(q.reshape(-1)), z_in, m_pos, m_neg, z_out, out)
        return torch.from_numpy(out).view(q.shape)
    v = z_in - q
    m = torch.where(v >= 0, torch.full_like(v, m_neg), torch.full_like(v, m_pos))
    return (((v * m + 128) >> 8) + z_out).clamp(INT8_MIN, INT8_MAX)


def xnn_add(q1: torch.Tensor, s1: float, z1: int, q2: torch.Tensor, s2: float, z2: int,
            s_out: float, z_out: int, _fused: bool = True) -> torch.Tensor:
    """XNNPACK's int8 add: multipliers ``round(s_i / s_out * 2**shift)`` with ``shift`` set by
    the larger ratio (20 bits), summed with a rounding bias, shifted right."""
    f32 = np.float32
    a = f32(s1) / f32(s_out)
    b = f32(s2) / f32(s_out)
    exp = int(np.frexp(max(abs(a), abs(b)))[1]) - 1  # unbiased exponent of the larger
    shift = 20 - exp
    ma = int(np.rint(np.ldexp(a, shift).astype(np.float32)))
    mb = int(np.rint(np.ldexp(b, shift).astype(np.float32)))
    bias = (1 << (shift - 1)) - ma * z1 - mb * z2
    if FUSED and _fused:
        a1, a2 = torch.broadcast_tensors(q1, q2)
        out = np.empty(a1.numel(), np.int64)
        _xnn_add_flat(_np(a1.reshape(-1)), ma, _np(a2.reshape(-1)), mb, bias, shift, z_out, out)
        return torch.from_numpy(out).view(a1.shape)
    acc = bias + q1 * ma + q2 * mb
    return ((acc >> shift) + z_out).clamp(INT8_MIN, INT8_MAX)
