from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from audiofcn.nn import fused_kernels
from audiofcn.nn.causal import (
    ELU,
    CausalConv1d,
    CausalConvTranspose1d,
    CausalResidualUnit,
    StreamingSequential,
)
from audiofcn.nn.stream_plan import StreamPlan, shifted_elu


def _plan_stream(plan: StreamPlan, x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Feed ``x`` ``(batch, channels, T)`` in chunks; returns ``(batch, channels, T')``."""
    state = plan.new_state()
    outs, pos, i = [], 0, 0
    while pos < x.shape[-1]:
        n = sizes[i % len(sizes)]
        outs.append(plan.step(x[..., pos:pos + n].transpose(1, 2), state))
        pos += n
        i += 1
    return torch.cat(outs, dim=1).transpose(1, 2)


FUSED = [False] + ([True] if fused_kernels.AVAILABLE else [])


@pytest.mark.parametrize("fused", FUSED)
@pytest.mark.parametrize("sizes", [[1], [3, 1, 10], [7, 0, 64]])
def test_plan_equals_offline_for_any_chunking(sizes: list[int], fused: bool) -> None:
    torch.manual_seed(0)
    net = StreamingSequential(
        CausalConv1d(2, 4, 7), CausalResidualUnit(4, 3), nn.ELU(),
        CausalConv1d(4, 8, 4, stride=2), ELU(), ELU(),  # an ELU of an ELU
        CausalConvTranspose1d(8, 3, 5, stride=2),  # kernel not a multiple of the stride
        nn.Tanh(), CausalResidualUnit(3, 1), ELU(),
        CausalConvTranspose1d(3, 3, 2, stride=2),  # kernel == stride: no tail
        CausalConvTranspose1d(3, 2, 12, stride=3), ELU())  # 4 taps per frame; trailing ELU
    with torch.no_grad():
        for p in net.parameters():  # larger weights: activations on both sides of the ELU
            p.mul_(3.0)
        x = torch.randn(2, 2, 150)
        offline = net(x)
        streamed = _plan_stream(StreamPlan(net, fused=fused), x, sizes)
    assert streamed.shape == offline.shape == (2, 2, 150 * 6)
    assert (streamed - offline).abs().max() < 1e-5
    assert offline.abs().max() > 0.1  # the comparison is not between two near-zero signals


def test_plan_waits_for_a_whole_strided_frame() -> None:
    torch.manual_seed(0)
    plan = StreamPlan(StreamingSequential(CausalConv1d(1, 3, 8, stride=4), ELU()))
    state = plan.new_state()
    assert plan.step(torch.randn(1, 3, 1), state).shape == (1, 0, 3)
    assert plan.step(torch.randn(1, 1, 1), state).shape == (1, 1, 3)
    assert plan.step(torch.randn(1, 0, 1), state).shape == (1, 0, 3)


def test_plan_snapshots_weights() -> None:
    torch.manual_seed(0)
    net = StreamingSequential(CausalConv1d(1, 2, 3))
    x = torch.randn(1, 1, 20)
    with torch.no_grad():
        before = net(x)
        plan = StreamPlan(net)
        net[0].weight.add_(1.0)
        assert not torch.allclose(net(x), before)
        assert torch.allclose(_plan_stream(plan, x, [5]), before, atol=1e-6)


@pytest.mark.parametrize("inplace", [False, True])
def test_shifted_elu_is_elu_plus_one(inplace: bool) -> None:
    x = torch.linspace(-30, 30, 1001)
    ref = torch.nn.functional.elu(x) + 1
    y = shifted_elu(x.clone() if inplace else x, inplace=inplace)
    assert torch.allclose(y, ref, atol=1e-6)
    assert torch.equal(x, torch.linspace(-30, 30, 1001))  # input kept unless asked


@pytest.mark.skipif(not fused_kernels.AVAILABLE, reason="numba not installed")
def test_fused_shifted_elu_matches_torch() -> None:
    x = torch.linspace(-120, 30, 300001)
    out = np.empty(x.shape[0], np.float32)
    fused_kernels.shifted_elu(x.numpy(), out)
    xd = x.double()
    ref = torch.where(xd > 0, xd + 1, xd.exp())  # elu(x) + 1
    err = (torch.from_numpy(out).double() - ref).abs()
    assert err.max() < 4e-6  # 1 ulp at 31
    neg = (x < 0) & (x > -80)  # below ~-87 float32 exp underflows anyway
    assert (err[neg] / ref[neg]).max() < 3e-7  # relative, ~2 ulp


@pytest.mark.skipif(not fused_kernels.AVAILABLE, reason="numba not installed")
def test_fused_plan_keeps_blas_threads_and_returns_fresh_outputs() -> None:
    torch.manual_seed(0)
    net = StreamingSequential(CausalConv1d(3, 8, 7), CausalResidualUnit(8, 3), ELU(),
                              CausalConvTranspose1d(8, 4, 4, stride=2), CausalResidualUnit(4, 1),
                              ELU(), CausalConv1d(4, 2, 7))
    plan = StreamPlan(net, fused=True)
    before = [lib.get_num_threads() for lib in fused_kernels._blas_libs or []]
    state = plan.new_state()
    x = torch.randn(1, 3, 40)
    outs = [plan.step(x[..., i:i + 4].transpose(1, 2), state) for i in range(0, 40, 4)]
    assert [lib.get_num_threads() for lib in fused_kernels._blas_libs or []] == before or \
        not before
    with torch.no_grad():
        offline = net(x)
    # outputs kept by the caller are not overwritten by later chunks (buffers are reused)
    assert (torch.cat(outs, 1).transpose(1, 2) - offline).abs().max() < 1e-5


def test_plan_keeps_leftover_samples_without_left_context() -> None:
    torch.manual_seed(0)
    # kernel == stride: no left padding, but an odd chunk leaves a sample for the next frame
    net = StreamingSequential(CausalConv1d(2, 3, 2, stride=2), nn.ELU(),
                              CausalConvTranspose1d(3, 2, 4, stride=2))
    x = torch.randn(1, 2, 51)
    with torch.no_grad():
        offline = net(x)
        streamed = _plan_stream(StreamPlan(net), x, [3, 0, 1, 10])
    assert streamed.shape == offline.shape == (1, 2, 50)
    assert (streamed - offline).abs().max() < 1e-5
