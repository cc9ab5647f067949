"""TFLite's int8 arithmetic (audiofcn.nn.tflite_int8): hand-computed values, a literal scalar
transcription of the C++ (tensorflow/lite/kernels/internal/common.h), and the fused numba
kernels against the torch ops. The ops of Lyra's graphs against the interpreter itself are
checked in tests/codec/test_lyra_port.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.nn import tflite_int8 as K

I64 = torch.int64


def _t(*v: int) -> torch.Tensor:
    return torch.tensor(v, dtype=I64)


# --- scalar transcription of the C++ (Python ints), the reference for random tests ------------
def _srdhm_cpp(a: int, b: int) -> int:
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    v = ab + nudge
    q = abs(v) // (1 << 31)  # C++ integer division truncates toward zero
    return q if v >= 0 else -q


def _rdbpot_cpp(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def _mbqm_cpp(x: int, m: int, shift: int) -> int:
    left, right = max(shift, 0), max(-shift, 0)
    return _rdbpot_cpp(_srdhm_cpp(x * (1 << left), m), right)


def test_quantize_multiplier_hand_values() -> None:
    m, s = K.quantize_multiplier(np.array([0.5, 0.75, 3.0, 1.0, 1 - 2.0 ** -40, 0.0]))
    assert m.tolist() == [1 << 30, 1610612736, 1610612736, 1 << 30, 1 << 30, 0]
    assert s.tolist() == [0, 0, 2, 1, 1, 0]  # 1 - 2^-40 rounds up to 2^31: halved, shift + 1


def test_fixed_point_primitives_hand_values() -> None:
    # 2 * a * b / 2^32 rounded; ties toward +infinity on both signs (the kernel's nudge)
    a = _t(1 << 30, 1, -1, -3, 3)
    b = torch.full_like(a, 1 << 30)
    assert K.saturating_rounding_doubling_high_mul(a, b).tolist() == [1 << 29, 1, 0, -1, 2]
    # x / 2^e rounded half away from zero
    x = _t(5, -5, 6, -6, -7, 3)
    e = _t(1, 1, 2, 2, 2, 0)
    assert K.rounding_divide_by_pot(x, e).tolist() == [3, -3, 2, -2, -2, 3]
    # 0.75 * 10 = 7.5 -> 8 ; 0.75 * -10 = -7.5 -> -8 (double rounding: -7 then ... see cpp)
    m, s = K.quantize_multiplier(0.75)
    got = K.multiply_by_quantized_multiplier(_t(10, -10, 100), m, s).tolist()
    assert got == [_mbqm_cpp(v, int(m), int(s)) for v in (10, -10, 100)] == [8, -7, 75]


def test_primitives_match_the_cpp_transcription_on_random_values() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(-(1 << 24), 1 << 24, 4000)
    real = np.exp(rng.uniform(np.log(1e-5), np.log(8.0), 4000))
    m, s = K.quantize_multiplier(real)
    got = K.multiply_by_quantized_multiplier(torch.from_numpy(x), m, s).tolist()
    want = [_mbqm_cpp(int(v), int(mm), int(ss)) for v, mm, ss in zip(x, m, s, strict=True)]
    assert got == want
    # fused (numba) requantization = torch ops, per-channel parameters
    acc = torch.from_numpy(rng.integers(-(1 << 22), 1 << 22, (2, 8, 50)))
    mc, sc = K.quantize_multiplier(np.exp(rng.uniform(-12, 1, 8)))
    zp = torch.from_numpy(rng.integers(-20, 20, 8))[:, None]
    a = K.requantize(acc, mc[:, None], sc[:, None], zp)
    b = K.requantize(acc, mc[:, None], sc[:, None], zp, _fused=False)
    assert torch.equal(a, b) and int(a.min()) >= -128 and int(a.max()) <= 127


def test_quantize_and_dequantize_hand_values() -> None:
    one, zero = torch.tensor(1.0), torch.tensor(0)
    x = torch.tensor([0.5, -0.5, 2.5, -2.5, 1000.0, -1000.0])
    # TfLiteRound: ties away from zero (torch.round would give 0, -0, 2, -2)
    assert K.quantize(x, one, zero).tolist() == [1, -1, 3, -3, 127, -128]
    assert K.quantize(torch.tensor([0.3]), torch.tensor(0.1), torch.tensor(5)).tolist() == [8]
    # the division is float32: a value seen in Lyra's encoder, -4.5 in float32 (-> -5) where
    # float64 gives -4.49999993 (-> -4); TFLite's kernel gives -5 + 23 = 18
    v, s = torch.tensor([-57.22405], dtype=torch.float32), torch.tensor(12.716455459594727)
    assert float(v[0]) / float(s) > -4.5
    assert K.quantize(v, s, torch.tensor(23)).tolist() == [18]
    d = K.dequantize(_t(3, -128), torch.tensor(0.1), torch.tensor(1))
    assert d.dtype == torch.float32
    assert d.tolist() == [np.float32(np.float32(0.1) * 2.0), np.float32(np.float32(0.1) * -129)]
    q = torch.arange(-128, 128)
    s, z = torch.tensor(0.0173), torch.tensor(-7)
    assert torch.equal(K.recover(K.dequantize(q, s, z), s, z), q)


@pytest.mark.parametrize("fused", [True, False])
def test_leaky_relu_hand_values(fused: bool) -> None:
    # unit grids, slope 0.25: -10 -> -2.5, which TFLite rounds to -3 (SRDHM gives -5 = -10/2
    # with the tie toward +inf, then /2 with the tie away from zero)
    q = _t(10, -10, 0, 127, -128)
    got = K.leaky_relu(q, 1.0, 0, 1.0, 0, 0.25, _fused=fused)
    assert got.tolist() == [10, -3, 0, 127, -32]
    # zero points: input grid (1, z=5), output grid (0.5, z=-3): 9 -> (9-5)*2 - 3 = 5
    assert K.leaky_relu(_t(9), 1.0, 5, 0.5, -3, 0.25, _fused=fused).tolist() == [5]


@pytest.mark.parametrize("fused", [True, False])
def test_add_hand_values(fused: bool) -> None:
    q1, q2 = _t(3, -3, 100, 60), _t(4, -4, 100, 0)
    assert K.add(q1, 1.0, 0, q2, 1.0, 0, 1.0, 0, _fused=fused).tolist() == [7, -7, 127, 60]
    # output scale 2: 3.5 -> 4, -3.5 -> -4 (ties away from zero), 200/2 = 100
    assert K.add(q1, 1.0, 0, q2, 1.0, 0, 2.0, 0, _fused=fused).tolist() == [4, -4, 100, 30]
    # different input grids and zero points: (7-1)*0.5 + (2+2)*0.25 = 4.0 -> 4 / 1 + 10
    assert K.add(_t(7), 0.5, 1, _t(2), 0.25, -2, 1.0, 10, _fused=fused).tolist() == [14]


@pytest.mark.parametrize("backend", ["reference", "xnnpack"])
def test_add_and_leaky_fused_equal_torch_on_random_values(backend: str) -> None:
    add, leaky = (K.add, K.leaky_relu) if backend == "reference" else \
        (K.xnn_add, K.xnn_leaky_relu)
    rng = np.random.default_rng(1)
    q1 = torch.from_numpy(rng.integers(-128, 128, 5000))
    q2 = torch.from_numpy(rng.integers(-128, 128, 5000))
    args = (q1, 0.37, 11, q2, 1.9, -40, 1.3, 7)
    assert torch.equal(add(*args), add(*args, _fused=False))
    largs = (q1, 3.1, -20, 1.7, 15, 0.3)
    assert torch.equal(leaky(*largs), leaky(*largs, _fused=False))


def test_conv_accumulators_are_exact() -> None:
    rng = np.random.default_rng(2)
    x = torch.from_numpy(rng.integers(-255, 256, (1, 16, 9)))
    w = torch.from_numpy(rng.integers(-127, 128, (8, 4, 3)))
    want = torch.zeros(1, 8, 7, dtype=I64)
    for o in range(8):
        g = o // 2
        for t in range(7):
            want[0, o, t] = (x[0, 4 * g:4 * g + 4, t:t + 3] * w[o]).sum()
    assert torch.equal(K.conv1d_acc(x, w, groups=4), want)
    # a bound past 2^24 switches to float64: still exact
    big = torch.full((1, 1024, 4), 255, dtype=I64)
    wb = torch.full((1, 1024, 4), 127, dtype=I64)
    assert K.exact_float_dtype(big, wb, 4096) == torch.float64
    assert int(K.conv1d_acc(big, wb)[0, 0, 0]) == 255 * 127 * 4096
    # transposed: each input frame adds its kernel-long contribution at stride 2
    xt = _t(1, 2).view(1, 1, 2)
    wt = _t(1, 10, 100, 1000).view(1, 1, 4)
    assert K.conv_transpose1d_acc(xt, wt, 2).view(-1).tolist() == [1, 10, 102, 1020, 200, 2000]


def test_rvq_encode_and_decode() -> None:
    # 2 quantizers of 1-d codes: 0.9 -> 1 (1.0), residual -0.1 -> 0; 2.2 -> 2, then 0.2 -> 1
    books = torch.tensor([[[0.0], [1.0], [2.0]], [[-0.1], [0.3], [0.0]]])
    z = torch.tensor([[0.9], [2.2]])
    assert K.rvq_encode(z, books, 2).tolist() == [[1, 0], [2, 1]]
    assert K.rvq_encode(z, books, 2, _fused=False).tolist() == [[1, 0], [2, 1]]
    # ties go to the first code (ARG_MIN)
    assert K.rvq_encode(torch.tensor([[0.5]]), books, 1).tolist() == [[0]]
    g = torch.Generator().manual_seed(0)
    z = torch.randn(200, 64, generator=g)
    books = torch.randn(8, 16, 64, generator=g) * 0.5
    codes = K.rvq_encode(z, books, 8)
    assert torch.equal(codes, K.rvq_encode(z, books, 8, _fused=False))
    dec = K.rvq_decode(codes.T[None], books)  # (1, 64, 200)
    assert dec.shape == (1, 64, 200)
    assert torch.allclose(dec[0].T, sum(books[i][codes[:, i]] for i in range(8)), atol=1e-5)


@pytest.mark.parametrize("length", [3, 7, 30, 33])
def test_conv_reference_order(length: int) -> None:
    # taps outer, channels inner, from zero, bias last: a hand case where the order matters
    x = torch.tensor([[[1e8], [1.0], [-1e8]]])  # (1, 3 channels, 1 frame)
    w = torch.ones(1, 3, 1)
    # ((0 + 1e8) + 1) + -1e8 = 0 in float32 (1 is lost next to 1e8); then + bias 0.5
    assert K.conv1d_reference_order(x, w, torch.tensor([0.5])).item() == 0.5
    g = torch.Generator().manual_seed(length)
    x = torch.randn(2, 8, length, generator=g)
    w, b = torch.randn(6, 4, 3, generator=g), torch.randn(6, generator=g)
    fused = K.conv1d_reference_order(x, w, b, 2, 2, 2)
    assert torch.equal(fused, K.conv1d_reference_order(x, w, b, 2, 2, 2, _fused=False))
    if fused.shape[-1]:
        ref = torch.nn.functional.conv1d(x, w, b, 2, 0, 2, 2)
        assert torch.allclose(fused, ref, atol=1e-5)


def test_xnnpack_kernels_hand_values() -> None:
    # fp32 requantization: float32(acc) * scale, ties to even (the fixed-point path: away)
    acc = _t(5, 7, -5, 1000)
    assert K.xnn_requantize(acc, torch.tensor(0.5), torch.tensor(0)).tolist() == [2, 4, -2, 127]
    assert K.xnn_requantize(_t(5), torch.tensor(0.5), torch.tensor(10)).tolist() == [12]
    # convert: times the float32 reciprocal, ties to even (TFLite's reference: 2.5 -> 3)
    one = torch.tensor(1.0)
    assert K.xnn_quantize(torch.tensor([2.5, -2.5, 3.5]), one, torch.tensor(0)).tolist() == \
        [2, -2, 4]
    assert K.xnn_quantize(torch.tensor([0.3]), torch.tensor(0.1), torch.tensor(5)).tolist() == [8]
    # leaky ReLU with 8-bit multipliers, + 128 >> 8: -10 * 0.25 = -2.5 -> -2 (reference: -3),
    # -2 * 0.25 = -0.5 -> 0 (reference: -1)
    assert K.xnn_leaky_relu(_t(10, -10, -2), 1.0, 0, 1.0, 0, 0.25).tolist() == [10, -2, 0]
    assert K.leaky_relu(_t(-2), 1.0, 0, 1.0, 0, 0.25).tolist() == [-1]
    # add: 20-bit multipliers; ties toward +infinity (3.5 -> 4, -3.5 -> -3; reference -4)
    assert K.xnn_add(_t(3, -3), 1.0, 0, _t(4, -4), 1.0, 0, 1.0, 0).tolist() == [7, -7]
    assert K.xnn_add(_t(3, -3), 1.0, 0, _t(4, -4), 1.0, 0, 2.0, 0).tolist() == [4, -3]
    assert K.xnn_add(_t(7), 0.5, 1, _t(2), 0.25, -2, 1.0, 10).tolist() == [14]


def test_xnnpack_requantize_fused_equals_torch_on_random_values() -> None:
    rng = np.random.default_rng(3)
    acc = torch.from_numpy(rng.integers(-(1 << 20), 1 << 20, (2, 8, 40)))
    scale = torch.from_numpy(np.exp(rng.uniform(-12, -2, 8)).astype(np.float32))[:, None]
    zp = torch.from_numpy(rng.integers(-20, 20, 8))[:, None]
    assert torch.equal(K.xnn_requantize(acc, scale, zp), K.xnn_requantize(acc, scale, zp,
                                                                          _fused=False))


def test_conv_xnnpack_order_is_fused_multiply_add_from_the_bias() -> None:
    e = 2.0 ** -12
    x = torch.tensor([[[1 + e]]])
    w = torch.tensor([[[1 + e]]])
    b = torch.tensor([-(1 + 2 * e)])
    # x * w = 1 + 2^-11 + 2^-24: a float32 product loses the 2^-24, a fused multiply-add
    # onto the bias keeps it
    assert K.conv1d_reference_order(x, w, b).item() == 0.0
    for fused in (True, False):
        got = K.conv1d_reference_order(x, w, b, xnnpack=True, _fused=fused).item()
        assert got == 2.0 ** -24
