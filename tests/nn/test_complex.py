"""Pseudo-complex layers equal complex arithmetic; multidilated blocks are causal and stream."""

import torch
import torch.nn.functional as F

from audiofcn.nn.complex import (
    ComplexConv2d,
    ComplexConvTranspose2d,
    bounded_complex_mask,
    channels_to_complex,
    complex_to_channels,
)
from audiofcn.nn.multidilated import MultiDilatedConv2d, MultiDilatedDenseBlock


def _complex_weight(layer) -> torch.Tensor:
    return torch.complex(layer.weight_real.detach(), layer.weight_imag.detach())


def test_layout_round_trip():
    z = torch.randn(2, 3, 5, 4, dtype=torch.complex64)
    x = complex_to_channels(z)
    assert x.shape == (2, 6, 5, 4) and x.dtype == torch.float32
    torch.testing.assert_close(channels_to_complex(x), z)


def test_pointwise_conv_is_complex_matrix_product():
    torch.manual_seed(0)
    conv = ComplexConv2d(3, 2, (1, 1), bias=False)
    z = torch.randn(1, 3, 4, 5, dtype=torch.complex64)
    y = channels_to_complex(conv(complex_to_channels(z)))
    w = _complex_weight(conv)[:, :, 0, 0]  # (out, in) complex
    expected = torch.einsum("oi,bift->boft", w, z)
    torch.testing.assert_close(y, expected, rtol=1e-5, atol=1e-5)


def test_conv_equals_native_complex_convolution():
    torch.manual_seed(1)
    conv = ComplexConv2d(2, 3, (5, 2), stride_freq=2, dilation=(1, 2), padding_freq=2)
    z = torch.randn(2, 2, 17, 9, dtype=torch.complex64)
    y = channels_to_complex(conv(complex_to_channels(z)))
    w = _complex_weight(conv)
    bias = torch.complex(conv.bias_real.detach(), conv.bias_imag.detach())
    zp = F.pad(z, (conv.context, 0, 2, 2))  # causal in time, symmetric in frequency
    expected = F.conv2d(zp, w, bias, stride=(2, 1), dilation=(1, 2))
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    # a complex scalar gain on the input scales the output (linearity over C, not just R)
    g = torch.tensor(0.3 - 1.2j)
    conv_nb = ComplexConv2d(2, 3, (3, 2), bias=False)
    a = channels_to_complex(conv_nb(complex_to_channels(z * g)))
    b = channels_to_complex(conv_nb(complex_to_channels(z))) * g
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_transposed_conv_equals_native_complex():
    torch.manual_seed(2)
    up = ComplexConvTranspose2d(3, 2, 7, stride_freq=4, padding_freq=3)
    z = torch.randn(1, 3, 11, 4, dtype=torch.complex64)
    y = channels_to_complex(up(complex_to_channels(z)))
    w = _complex_weight(up)
    bias = torch.complex(up.bias_real.detach(), up.bias_imag.detach())
    expected = F.conv_transpose2d(z, w, bias, stride=(4, 1), padding=(3, 0))
    assert y.shape == (1, 2, 41, 4)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)


def test_conv_is_causal_and_streams():
    torch.manual_seed(3)
    conv = ComplexConv2d(2, 2, (3, 3), dilation=(2, 2)).eval()
    x = torch.randn(1, 4, 8, 12)
    y = conv(x)
    x2 = x.clone()
    x2[..., 7:] = torch.randn_like(x2[..., 7:])  # change the future only
    torch.testing.assert_close(conv(x2)[..., :7], y[..., :7])
    state: dict = {}
    with torch.no_grad():
        parts = [conv.forward_stream(x[..., i:i + n], state) for i, n in ((0, 1), (1, 4), (5, 7))]
    torch.testing.assert_close(torch.cat(parts, -1), y.detach(), rtol=1e-5, atol=1e-5)


def test_multidilated_dilations_and_block_streaming():
    md = MultiDilatedConv2d([4, 3, 3], 3)
    assert md.dilations == [1, 2, 4]
    torch.manual_seed(4)
    block = MultiDilatedDenseBlock(4, 3, 3, (1, 2)).eval()
    assert block.time_receptive_field == 8
    x = torch.randn(2, 8, 1, 20)
    with torch.no_grad():
        y = block(x)
        state: dict = {}
        s = torch.cat([block.forward_stream(x[..., t:t + 1], state) for t in range(20)], -1)
    torch.testing.assert_close(s, y, rtol=1e-5, atol=1e-5)
    # with autograd on, streaming takes the unfused per-group path: same result
    state = {}
    s2 = torch.cat([block.forward_stream(x[..., t:t + 1], state) for t in range(20)], -1)
    assert any(isinstance(k, torch.nn.Module) for k in state)  # per-conv caches were used
    torch.testing.assert_close(s2.detach(), y, rtol=1e-5, atol=1e-5)
    # receptive field: an impulse at frame 5 influences exactly frames 5 .. 5 + 7 more than
    # the zero input does
    with torch.no_grad():
        base = block(torch.zeros(1, 8, 1, 20))
        imp = torch.zeros(1, 8, 1, 20)
        imp[..., 5] = 1.0
        diff = (block(imp) - base).abs().amax(dim=(0, 1, 2))
    assert torch.all(diff[:5] == 0) and diff[5] > 0 and diff[12] > 0
    assert torch.all(diff[13:] == 0)


def test_bounded_mask():
    m = bounded_complex_mask(torch.randn(3, 2, 7, 5) * 10)
    assert m.dtype == torch.complex64 and m.shape == (3, 7, 5)
    assert float(m.abs().max()) <= 1.0 + 1e-6  # tanh saturates at 1 in float32
