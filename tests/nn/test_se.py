import pytest
import torch

from audiofcn.nn.conv import ConvBNAct1d, ConvBNAct2d, ResidualBlock1d, ResidualBlock2d
from audiofcn.nn.se import (
    ChannelSE,
    ChannelSpatialSE2d,
    ResidualSEBlock1d,
    SEBlock1d,
    SpatialSE2d,
    se_hidden,
)


def test_se_hidden_reduction_and_amplifying():
    assert se_hidden(64, reduction=2) == 32
    assert se_hidden(64, amplifying=16) == 1024
    with pytest.raises(ValueError):
        se_hidden(64)


@pytest.mark.parametrize("shape", [(2, 8, 50), (2, 8, 6, 7)])
def test_channel_se_rescales_channels_only(shape):
    se = ChannelSE(8, 4)
    x = torch.randn(*shape)
    y = se(x)
    assert y.shape == x.shape
    ratio = (y / x).flatten(2)
    # one gate per (batch, channel), in (0, 1), constant over time/frequency
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), atol=1e-5)
    assert ((ratio > 0) & (ratio < 1)).all()


def test_channel_se_gate_depends_on_input():
    se = ChannelSE(4, 8)
    a, b = se.gate(torch.ones(1, 4, 10)), se.gate(-torch.ones(1, 4, 10))
    assert not torch.allclose(a, b)


def test_spatial_se_gates_positions():
    sse = SpatialSE2d(3)
    x = torch.randn(2, 3, 5, 6)
    y = sse(x)
    ratio = y / x
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)  # same over channels


@pytest.mark.parametrize("combine", ["max", "sum"])
def test_scse_combines(combine):
    m = ChannelSpatialSE2d(6, reduction=2, combine=combine)
    x = torch.randn(2, 6, 4, 9)
    expected = torch.maximum(m.cse(x), m.sse(x)) if combine == "max" else m.cse(x) + m.sse(x)
    assert torch.allclose(m(x), expected)
    with pytest.raises(ValueError):
        ChannelSpatialSE2d(6, combine="mean")


def test_se_blocks_shapes_and_gradients():
    x = torch.randn(2, 16, 81, requires_grad=True)
    for block, cout in [(SEBlock1d(16, 32, amplifying=2), 32),
                        (ResidualSEBlock1d(16, 16, amplifying=2), 16),
                        (ResidualSEBlock1d(16, 24, amplifying=0), 24)]:
        y = block(x)
        assert y.shape == (2, cout, 27)
        y.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
        x.grad = None


def test_conv_blocks():
    assert ConvBNAct1d(1, 8, 3, stride=3, padding=0)(torch.randn(2, 1, 81)).shape == (2, 8, 27)
    assert ConvBNAct1d(4, 8, pool=4)(torch.randn(2, 4, 40)).shape == (2, 8, 10)
    assert ConvBNAct2d(1, 8, pool=(2, 4))(torch.randn(2, 1, 16, 40)).shape == (2, 8, 8, 10)
    assert ResidualBlock1d(8, 16)(torch.randn(2, 8, 30)).shape == (2, 16, 30)
    assert ResidualBlock2d(8, 16, stride=2)(torch.randn(2, 8, 10, 12)).shape == (2, 16, 5, 6)
    with pytest.raises(ValueError):
        ConvBNAct1d(1, 2, activation="swishy")
