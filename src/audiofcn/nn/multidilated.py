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
        groups = [x]
        for layer, act in zip(self.layers, self.acts, strict=True):
            groups.append(act(layer.forward_stream(groups, state)))
        return x + self.transition_act(self.transition.forward_stream(self._concat(groups),
                                                                      state))
