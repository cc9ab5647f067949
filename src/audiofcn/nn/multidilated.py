"""D3Net-style multidilated densely connected blocks (pseudo-complex, causal in time).

In a densely connected block, layer ``i`` sees the block input and the outputs of all earlier
layers. D3Net's *multidilated* convolution (Takahashi & Mitsufuji, 2021) convolves each of those
inputs with its own dilation: the input coming from layer ``j`` (``j = 0`` is the block input)
gets dilation ``2^j``, so layer ``i`` spans dilations ``1 .. 2^i``. A short-range view of early
features and a long-range view of late ones grows the receptive field exponentially without
pooling and without the aliasing ("gridding") of one large dilation on a dense input.

Here every convolution is a :class:`~audiofcn.nn.complex.ComplexConv2d` over (frequency, time),
dilated in both axes and causal in time, so the whole block streams frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn.complex import ComplexBNAct, ComplexConv2d, StreamState


class MultiDilatedConv2d(nn.Module):
    """Sum over input groups ``j`` of a complex conv with dilation ``2^j`` (both axes).

    Shapes: a list of ``(batch, 2*c_j, F, T)`` tensors (``c_j = group_channels[j]``) ->
    ``(batch, 2*out_channels, F, T)``.
    """

    def __init__(self, group_channels: Sequence[int], out_channels: int,
                 kernel_size: tuple[int, int] = (3, 2)) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            ComplexConv2d(c, out_channels, kernel_size, dilation=2 ** j, bias=j == 0)
            for j, c in enumerate(group_channels))

    @property
    def dilations(self) -> list[int]:
        return [c.dilation[1] for c in self.convs]

    def forward(self, groups: Sequence[torch.Tensor]) -> torch.Tensor:
        out = self.convs[0](groups[0])
        for conv, g in zip(self.convs[1:], groups[1:], strict=True):
            out = out + conv(g)
        return out

    def forward_stream(self, groups: Sequence[torch.Tensor], state: StreamState) -> torch.Tensor:
        out = self.convs[0].forward_stream(groups[0], state)
        for conv, g in zip(self.convs[1:], groups[1:], strict=True):
            out = out + conv.forward_stream(g, state)
        return out


class MultiDilatedDenseBlock(nn.Module):
    """D2 block: ``num_layers`` multidilated conv -> BN -> PReLU layers, densely connected,
    then a 1x1 complex transition back to ``channels`` and a residual connection.

    Receptive field in time: ``1 + (kT-1) * (2^num_layers - 1)`` frames (causal).

    Shapes: ``(batch, 2*channels, F, T)`` -> same.
    """

    def __init__(self, channels: int, growth: int, num_layers: int,
                 kernel_size: tuple[int, int] = (3, 2)) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i in range(num_layers):
            self.layers.append(MultiDilatedConv2d([channels] + [growth] * i, growth, kernel_size))
            self.acts.append(ComplexBNAct(growth))
        self.transition = ComplexConv2d(channels + growth * num_layers, channels, (1, 1))
        self.transition_act = ComplexBNAct(channels)
        self.time_receptive_field = 1 + (kernel_size[1] - 1) * (2 ** num_layers - 1)

    def _concat(self, groups: list[torch.Tensor]) -> torch.Tensor:
        # Groups are [re, im] each; concatenating real halves then imaginary halves keeps the
        # "real channels first" layout of the pseudo-complex tensors.
        reals = [g[:, : g.shape[1] // 2] for g in groups]
        imags = [g[:, g.shape[1] // 2:] for g in groups]
        return torch.cat(reals + imags, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = [x]
        for layer, act in zip(self.layers, self.acts, strict=True):
            groups.append(act(layer(groups)))
        return x + self.transition_act(self.transition(self._concat(groups)))

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        if self._fusable(x):
            return self._fused_stream(x, state)
        groups = [x]
        for layer, act in zip(self.layers, self.acts, strict=True):
            groups.append(act(layer.forward_stream(groups, state)))
        return x + self.transition_act(self.transition.forward_stream(self._concat(groups),
                                                                      state))

    def _fusable(self, x: torch.Tensor) -> bool:
        k = self.layers[0].convs[0].kernel_size
        return (not self.training and not torch.is_grad_enabled() and x.shape[-2] == 1
                and k == (1, 2))

    def _fused_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        # The fused weights are built when a stream starts (weights are fixed while it runs).
        key = (self, "fused")
        if key not in state:
            if any(k in state for k in self.modules()):
                raise RuntimeError("a stream cannot switch between fused and unfused paths")
            state[key] = (FusedDenseBlockStep(self), None)
        fused, history = state[key]
        # (B, 2C, 1, T): [re; im] of the single input group is already group-major
        outs = []
        for t in range(x.shape[-1]):
            y, history = fused.step(x[:, :, 0, t], history)
            outs.append(y)
        state[key] = (fused, history)
        return torch.stack(outs, dim=-1).unsqueeze(2)


class FusedDenseBlockStep:
    """Inference-only fast path of a :class:`MultiDilatedDenseBlock` whose convolutions span
    one frequency bin and two frames (kernel ``(1, 2)``), for streaming one frame at a time.

    Per frame, layer ``i`` of the block is one matrix product: its current-frame inputs are
    the dense vector so far, its past inputs (group ``j`` at ``t - 2^j``) are gathered from a
    history of the last ``2^(L-1)`` dense vectors with one precomputed index, and the
    BatchNorm that follows is folded into the matrix. That replaces ~80 small kernels per
    block and frame by ~20. Exactly the same arithmetic as ``forward`` up to float rounding.

    Vectors are "group-major": ``[x(re, im), y_1(re, im), ...]``.
    """

    def __init__(self, block: MultiDilatedDenseBlock) -> None:
        layers = block.layers
        self.num_layers = len(layers)
        c2 = 2 * layers[0].convs[0].in_channels
        g2 = 2 * layers[0].convs[0].out_channels
        sizes = [c2] + [g2] * self.num_layers
        offs = [sum(sizes[:j]) for j in range(len(sizes))]
        self.hist = 2 ** (self.num_layers - 1)
        self.hist_channels = offs[-1]  # groups 0 .. L-1 (the last output is never "past")
        self.weights, self.biases, self.slopes, self.index = [], [], [], []
        for layer, act in zip(layers, block.acts, strict=True):
            cur, past, idx = [], [], []
            for j, conv in enumerate(layer.convs):
                w = conv.real_weight().detach()[:, :, 0]  # (g2, size_j, 2): taps t-2^j, t
                past.append(w[..., 0])
                cur.append(w[..., 1])
                t = self.hist - 2 ** j  # column of frame t - 2^j in the history
                idx += [(offs[j] + c) * self.hist + t for c in range(sizes[j])]
            bias = layer.convs[0].real_bias()
            w, b = self._fold(torch.cat(cur + past, dim=1), bias.detach(), act[0])
            self.weights.append(w)
            self.biases.append(b)
            self.slopes.append(act[1].weight.detach())
            self.index.append(torch.tensor(idx, dtype=torch.long))
        # transition: its columns are in the reals-then-imags layout of _concat
        wt = block.transition.real_weight().detach()[:, :, 0, 0]
        half = wt.shape[1] // 2
        perm = []
        for j, s in enumerate(sizes):
            co = offs[j] // 2
            perm += list(range(co, co + s // 2)) + list(range(half + co, half + co + s // 2))
        wt = wt[:, perm]
        self.wt, self.bt = self._fold(wt, block.transition.real_bias().detach(),
                                      block.transition_act[0])
        self.slope_t = block.transition_act[1].weight.detach()

    @staticmethod
    def _fold(w: torch.Tensor, b: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        shift = bn.bias.detach() - bn.running_mean * scale
        return (w * scale[:, None]).contiguous(), b * scale + shift

    def step(self, x: torch.Tensor, history: torch.Tensor | None) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
        """One frame: ``x`` ``(batch, 2C)`` -> ``(batch, 2C)``; ``history`` ``(batch,
        hist_channels, hist)`` (``None`` at the start: zeros, as the offline padding)."""
        if history is None:
            history = x.new_zeros(x.shape[0], self.hist_channels, self.hist)
        flat = history.reshape(x.shape[0], -1)
        dense = x
        for w, b, a, idx in zip(self.weights, self.biases, self.slopes, self.index,
                                strict=True):
            y = F.prelu(F.linear(torch.cat([dense, flat[:, idx]], dim=1), w, b), a)
            dense = torch.cat([dense, y], dim=1)
        out = x + F.prelu(F.linear(dense, self.wt, self.bt), self.slope_t)
        history = torch.cat([history[:, :, 1:], dense[:, :self.hist_channels, None]], dim=2)
        return out, history
