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

import numpy as np
import torch
import torch.nn.functional as F

INT8_MIN, INT8_MAX = -128, 127


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
    of ``2 * a * b``, rounded to nearest (ties away from zero)."""
    ab = a * b
    nudge = torch.where(ab >= 0, torch.full_like(ab, 1 << 30), torch.full_like(ab, 1 - (1 << 30)))
    out = torch.div(ab + nudge, 1 << 31, rounding_mode="trunc")  # C++ division: toward zero
    overflow = (a == -(1 << 31)) & (b == -(1 << 31))
    return torch.where(overflow, torch.full_like(out, (1 << 31) - 1), out)


def rounding_divide_by_pot(x: torch.Tensor, exponent: torch.Tensor) -> torch.Tensor:
    """``RoundingDivideByPOT``: ``x / 2**exponent`` rounded to nearest, ties away from zero."""
    exponent = torch.as_tensor(exponent, dtype=torch.int64)
    mask = (torch.ones_like(exponent) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0).to(torch.int64)
    return (x >> exponent) + (remainder > threshold).to(torch.int64)


def multiply_by_quantized_multiplier(x: torch.Tensor, multiplier: torch.Tensor,
                                     shift: torch.Tensor) -> torch.Tensor:
    """``MultiplyByQuantizedMultiplier`` (the double-rounding form TFLite builds by default):
    ``x * multiplier * 2**(shift - 31)`` rounded as the kernels do. All int64 tensors."""
    left = shift.clamp(min=0)
    right = (-shift).clamp(min=0)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x * (torch.ones_like(left) << left), multiplier),
        right)


def _scalar(v: torch.Tensor | float) -> float:
    return float(v.reshape(-1)[0]) if isinstance(v, torch.Tensor) else float(v)


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """QUANTIZE float32 -> int8 (``AffineQuantize``): ``round(x / scale) + zero_point`` with the
    division in float64 and ``TfLiteRound`` (ties away from zero), clamped to int8. ``scale``
    and ``zero_point`` broadcast against ``x``."""
    v = x.to(torch.float64) / scale.to(torch.float64)
    r = torch.sign(v) * torch.floor(v.abs() + 0.5)
    return (r.to(torch.int64) + zero_point.to(torch.int64)).clamp(INT8_MIN, INT8_MAX)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """DEQUANTIZE int8 -> float32: ``float32(scale * (q - zero_point))`` (exact product, one
    rounding)."""
    return ((q - zero_point.to(torch.int64)).to(torch.float64)
            * scale.to(torch.float64)).to(torch.float32)


def recover(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """The int8 values behind a float32 tensor that :func:`dequantize` produced (exact)."""
    v = x.to(torch.float64) / scale.to(torch.float64)
    return torch.round(v).to(torch.int64) + zero_point.to(torch.int64)


def requantize(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor,
               zero_point: torch.Tensor) -> torch.Tensor:
    """int32 accumulator (bias included) -> int8: the last step of CONV_2D,
    DEPTHWISE_CONV_2D and TRANSPOSE_CONV. Per-channel ``multiplier``/``shift`` broadcast."""
    y = multiply_by_quantized_multiplier(acc, multiplier, shift) + zero_point.to(torch.int64)
    return y.clamp(INT8_MIN, INT8_MAX)


def conv_multipliers(in_scale: torch.Tensor | float, weight_scale: torch.Tensor,
                     out_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel requantization of a conv (``PopulateConvolutionQuantizationParams``):
    ``in_scale * weight_scale / out_scale`` in float64 from float32 scales."""
    real = (_scalar(in_scale) * weight_scale.detach().double().cpu().numpy()
            / out_scale.detach().double().cpu().numpy())
    return quantize_multiplier(real)


def conv1d_acc(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, dilation: int = 1,
               groups: int = 1) -> torch.Tensor:
    """Exact int32 accumulator of a 1-D conv: ``x`` = input minus its zero point, ``weight`` =
    int8 weights, both int64; computed as a float64 conv (exact below 2**53)."""
    acc = F.conv1d(x.to(torch.float64), weight.to(torch.float64), None, stride, 0, dilation,
                   groups)
    return acc.round().to(torch.int64)


def add(q1: torch.Tensor, s1: float, z1: int, q2: torch.Tensor, s2: float, z2: int,
        s_out: float, z_out: int) -> torch.Tensor:
    """ADD of two int8 tensors (``reference_integer_ops::AddElementwise``, left shift 20):
    each input rescaled to ``2 * max(s1, s2)`` in fixed point, summed, rescaled to the output."""
    left_shift = 20
    twice_max = 2.0 * max(float(np.float32(s1)), float(np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(np.float32(s1)) / twice_max)
    m2, sh2 = quantize_multiplier(float(np.float32(s2)) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(s_out))))
    a = multiply_by_quantized_multiplier((q1 - z1) << left_shift, m1, sh1)
    b = multiply_by_quantized_multiplier((q2 - z2) << left_shift, m2, sh2)
    return (multiply_by_quantized_multiplier(a + b, mo, sho) + z_out).clamp(INT8_MIN, INT8_MAX)


def leaky_relu(q: torch.Tensor, s_in: float, z_in: int, s_out: float, z_out: int,
               alpha: float) -> torch.Tensor:
    """LEAKY_RELU on int8 (``reference_ops::QuantizeLeakyRelu``): the identity and the slope
    each a fixed-point multiplier; the factors are computed in float32 as in the kernel's
    Prepare."""
    f32 = np.float32
    m_id, sh_id = quantize_multiplier(float(f32(s_in) / f32(s_out)))
    m_a, sh_a = quantize_multiplier(float(f32(s_in) * f32(alpha) / f32(s_out)))
    v = q - z_in
    y = torch.where(v >= 0, multiply_by_quantized_multiplier(v, m_id, sh_id),
                    multiply_by_quantized_multiplier(v, m_a, sh_a))
    return (y + z_out).clamp(INT8_MIN, INT8_MAX)
