from __future__ import annotations

import pytest
import torch

from audiofcn.nn.causal import (
    CausalConv1d,
    CausalConvTranspose1d,
    CausalResidualUnit,
    StreamingSequential,
)


def _stream(module, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    state: dict = {}
    outs, pos = [], 0
    i = 0
    while pos < x.shape[-1]:
        n = sizes[i % len(sizes)]
        outs.append(module.forward_stream(x[..., pos:pos + n], state))
        pos += n
        i += 1
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("stride,kernel,dilation", [(1, 7, 1), (1, 7, 9), (4, 8, 1), (5, 10, 1)])
def test_causal_conv_lengths_and_streaming(stride: int, kernel: int, dilation: int) -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(3, 5, kernel, stride=stride, dilation=dilation)
    x = torch.randn(2, 3, 203)
    y = conv(x)
    assert y.shape == (2, 5, 203 // stride)
    ys = _stream(conv, x, [1, 17, 3, 64])
    assert ys.shape == y.shape
    assert torch.allclose(ys, y, atol=1e-5)


def test_causal_conv_does_not_look_ahead() -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(1, 2, 8, stride=4)
    x = torch.randn(1, 1, 64)
    x2 = x.clone()
    x2[..., 40:] += 1.0  # change the future from sample 40 on
    y, y2 = conv(x), conv(x2)
    # Frame j only sees samples <= 4j + 3: frames 0..9 (samples <= 39) are unchanged.
    assert torch.equal(y[..., :10], y2[..., :10])
    assert not torch.equal(y[..., 10:], y2[..., 10:])


def test_transposed_conv_streaming_matches_offline() -> None:
    torch.manual_seed(0)
    conv = CausalConvTranspose1d(4, 3, 16, stride=8)
    x = torch.randn(2, 4, 13)
    y = conv(x)
    assert y.shape == (2, 3, 13 * 8)
    ys = _stream(conv, x, [1, 2, 5])
    assert torch.allclose(ys, y, atol=1e-5)


def test_sequential_stack_streams_exactly() -> None:
    torch.manual_seed(0)
    net = StreamingSequential(CausalConv1d(1, 4, 7), CausalResidualUnit(4, 3), torch.nn.ELU(),
                              CausalConv1d(4, 8, 4, stride=2), CausalConvTranspose1d(8, 2, 4,
                                                                                      stride=2))
    x = torch.randn(1, 1, 100)
    y = net(x)
    assert y.shape == (1, 2, 100)
    assert (net_stream := _stream(net, x, [3, 1, 10])).shape == y.shape
    assert (net_stream - y).abs().max() < 1e-5


def test_bad_strided_conv_rejected() -> None:
    with pytest.raises(ValueError):
        CausalConv1d(1, 1, 2, stride=4)


def test_fast_elu_matches_torch_values_and_gradients() -> None:
    from audiofcn.nn.causal import elu

    x = torch.linspace(-20, 20, 1001, requires_grad=True)
    x2 = x.detach().clone().requires_grad_(True)
    assert torch.allclose(elu(x), torch.nn.functional.elu(x2), atol=1e-6)
    elu(x).sum().backward()
    torch.nn.functional.elu(x2).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, x2.grad, atol=1e-6)
