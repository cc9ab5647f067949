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

from collections import deque
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

    Group ``j`` of the dense vector (``j = 0``: the block input, ``j = i``: layer ``i-1``'s
    output) enters every later layer through tap ``t`` and tap ``t - 2^j``. Per frame:

    1. One product gives every layer's and the transition's pre-activation from what is
       already known: the block input and all *past* groups ``g_j(t - 2^j)`` (kept as
       references in a short history, no copies), plus biases.
    2. Layer ``i``'s output is PReLU of its slice; one in-place product adds its
       current-frame contribution to all later layers and the transition.

    So ``2L + 3`` kernels per block and frame, BatchNorm folded into the weights. The same
    arithmetic as ``forward`` up to float rounding. Vectors are ``(batch, 2C)`` ``[re; im]``.
    """

    def __init__(self, block: MultiDilatedDenseBlock) -> None:
        layers = block.layers
        self.num_layers = nl = len(layers)
        c2 = 2 * layers[0].convs[0].in_channels
        g2 = 2 * layers[0].convs[0].out_channels
        self.c2, self.g2 = c2, g2
        sizes = [c2] + [g2] * nl  # groups 0 .. L
        offs = [sum(sizes[:j]) for j in range(nl + 2)]
        self.hist = 2 ** (nl - 1)
        n_pre = nl * g2 + c2  # pre-activations: layers 0 .. L-1, then the transition
        like = layers[0].convs[0].weight_real.detach()
        start = like.new_zeros(n_pre, c2 + offs[nl])  # columns: x(t), g_j(t - 2^j), j < L
        cur = like.new_zeros(n_pre, offs[nl + 1])  # columns: g_j(t), as the dense vector
        bias = like.new_zeros(n_pre)
        self.slopes = []
        for i, (layer, act) in enumerate(zip(layers, block.acts, strict=True)):
            scale, shift = self._bn(act[0])
            rows = slice(i * g2, (i + 1) * g2)
            for j, conv in enumerate(layer.convs):
                w = conv.real_weight().detach()[:, :, 0] * scale[:, None, None]
                cur[rows, offs[j]:offs[j] + sizes[j]] = w[..., 1]
                start[rows, c2 + offs[j]:c2 + offs[j] + sizes[j]] = w[..., 0]  # t - 2^j
            bias[rows] = layer.convs[0].real_bias().detach() * scale + shift
            self.slopes.append(act[1].weight.detach())
        # transition: its columns are in the reals-then-imags layout of _concat
        wt = block.transition.real_weight().detach()[:, :, 0, 0]
        half = wt.shape[1] // 2
        perm = []
        for j, s in enumerate(sizes):
            co = offs[j] // 2
            perm += list(range(co, co + s // 2)) + list(range(half + co, half + co + s // 2))
        scale, shift = self._bn(block.transition_act[0])
        cur[nl * g2:] = wt[:, perm] * scale[:, None]
        bias[nl * g2:] = block.transition.real_bias().detach() * scale + shift
        self.slope_t = block.transition_act[1].weight.detach()
        start[:, :c2] = cur[:, :c2]
        self.start_t = start.t().contiguous()
        self.bias = bias
        # group j >= 1 feeds the layers after it and the transition
        self.cur_t = [cur[j * g2:, offs[j]:offs[j] + g2].t().contiguous()
                      for j in range(1, nl + 1)]

    @staticmethod
    def _bn(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        return scale, bn.bias.detach() - bn.running_mean * scale

    def step(self, x: torch.Tensor, history: DenseBlockHistory | None
             ) -> tuple[torch.Tensor, DenseBlockHistory]:
        """One frame: ``x`` ``(batch, 2C)`` -> ``(batch, 2C)``. ``history``: what the next
        frames need (``None`` at the start: zeros, as the offline padding)."""
        if history is None:
            history = DenseBlockHistory(self, x)
        past = history.groups
        pre = history.pre
        torch.addmm(self.bias, torch.cat([x, *[past[-(1 << j)][j] for j in
                                               range(self.num_layers)]], dim=1),
                    self.start_t, out=pre)
        groups = [x]
        for act, later, w, a in zip(history.acts, history.later, self.cur_t, self.slopes,
                                    strict=True):
            g = F.prelu(act, a)
            groups.append(g)
            later.addmm_(g, w)
        past.append(groups[:-1])
        return x + F.prelu(history.transition, self.slope_t), history


class DenseBlockHistory:
    """Streaming state of a :class:`FusedDenseBlockStep`: the groups of the last
    ``2^(L-1)`` frames (references, oldest first) and a reused pre-activation buffer with
    its slices (views made once, not per frame)."""

    def __init__(self, step: FusedDenseBlockStep, x: torch.Tensor) -> None:
        b, nl, g2 = x.shape[0], step.num_layers, step.g2
        zeros = [x.new_zeros(b, step.c2)] + [x.new_zeros(b, g2)] * (nl - 1)
        self.groups: deque[list[torch.Tensor]] = deque([zeros] * step.hist, maxlen=step.hist)
        self.pre = x.new_empty(b, step.bias.shape[0])
        self.acts = [self.pre[:, i * g2:(i + 1) * g2] for i in range(nl)]
        self.later = [self.pre[:, (i + 1) * g2:] for i in range(nl)]
        self.transition = self.pre[:, nl * g2:]
