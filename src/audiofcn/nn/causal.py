"""Causal 1-D convolutions with exact streaming.

Every module here has two entry points:

* ``forward(x)``: offline, the whole signal at once (training, file encoding);
* ``forward_stream(x, state)``: one chunk of any length; ``state`` is a plain ``dict`` the caller
  owns (one per stream), so one model can serve many concurrent streams.

Feeding a signal through ``forward_stream`` in chunks of any sizes gives, concatenated, the same
output as ``forward`` on the whole signal (up to float rounding): the state caches exactly the
left context a convolution needs (cached convolution state, not re-computation on overlapping
windows, which is what makes streaming cheap).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

StreamState = dict[Any, Any]


def elu(x: torch.Tensor) -> torch.Tensor:
    """ELU (alpha 1) as ``where(x > 0, x, exp(min(x, 0)) - 1)``.

    Same values as ``F.elu`` to ~1e-7, but ``F.elu`` goes through ``expm1``, which this torch
    build runs ~10x slower than ``exp`` on CPU: with it the codec decoded 1.6-2x slower. The
    clamp keeps the unused branch finite, so gradients are exact as well.
    """
    return torch.where(x > 0, x, torch.exp(x.clamp_max(0)) - 1)


class ELU(nn.Module):
    """Module form of :func:`elu`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return elu(x)


class CausalConv1d(nn.Conv1d):
    """Conv1d padded on the left only, so output frame ``j`` sees input samples ``<= j*s + s-1``.

    Left padding is ``(kernel-1)*dilation + 1 - stride``: for stride 1 this is the usual causal
    padding and the output has the input's length; for a strided conv (kernel ``2*stride``) the
    output has ``floor(T / stride)`` frames and frame ``j`` is ready once sample ``(j+1)*s - 1``
    has arrived, i.e. the latency is one stride.

    Shapes: ``(batch, in_channels, T)`` -> ``(batch, out_channels, T // stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int = 1, dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         dilation=dilation, bias=bias)
        self.receptive = (kernel_size - 1) * dilation + 1
        self.left_pad = self.receptive - stride
        if self.left_pad < 0:
            raise ValueError("CausalConv1d needs (kernel-1)*dilation + 1 >= stride")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.left_pad, 0)))

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        """Process one chunk ``(batch, in_channels, n)``; returns the frames that became
        complete, ``(batch, out_channels, m)`` with ``m`` possibly 0."""
        buf = state.get(self)
        if buf is None:  # the zeros the offline forward pads with
            buf = x.new_zeros(x.shape[0], x.shape[1], self.left_pad)
        buf = torch.cat([buf, x], dim=-1)
        s = self.stride[0]
        n_out = (buf.shape[-1] - self.receptive) // s + 1 if buf.shape[-1] >= self.receptive \
            else 0
        if n_out <= 0:
            state[self] = buf
            return x.new_zeros(x.shape[0], self.out_channels, 0)
        used = (n_out - 1) * s + self.receptive
        y = self._matmul_conv(buf[..., :used])
        state[self] = buf[..., n_out * s:]  # exactly the left context the next frame needs
        return y

    def _matmul_conv(self, x: torch.Tensor) -> torch.Tensor:
        """The same convolution as im2col + one matmul. For the short inputs of streaming
        (a few frames per call) this is several times faster than ``conv1d``, whose per-call
        set-up dominates there; offline, ``conv1d`` is faster and is used."""
        k, d, s = self.kernel_size[0], self.dilation[0], self.stride[0]
        cols = x.unfold(-1, self.receptive, s)[..., ::d]  # (B, C_in, n_out, k)
        cols = cols.permute(0, 1, 3, 2).reshape(x.shape[0], self.in_channels * k, -1)
        y = torch.matmul(self.weight.reshape(self.out_channels, -1), cols)
        return y + self.bias[:, None] if self.bias is not None else y


class CausalConvTranspose1d(nn.ConvTranspose1d):
    """Transposed conv whose output keeps the first ``T * stride`` samples (the right tail of
    ``kernel - stride`` samples, which depends on future frames, is dropped offline and held
    back as overlap-add state when streaming).

    Shapes: ``(batch, in_channels, T)`` -> ``(batch, out_channels, T * stride)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *,
                 stride: int) -> None:
        if kernel_size < stride:
            raise ValueError("CausalConvTranspose1d needs kernel_size >= stride")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)

    def _no_bias(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose1d(x, self.weight, None, self.stride)

    def _stream_no_bias(self, x: torch.Tensor) -> torch.Tensor:
        """``conv_transpose1d`` without bias as one matmul plus overlap-add (faster for the few
        frames of a streaming call; needs ``kernel`` a multiple of ``stride``)."""
        s, k = self.stride[0], self.kernel_size[0]
        if k % s:
            return self._no_bias(x)
        m, (b, c_in, n) = k // s, x.shape
        # contrib[b, j, o, i, t]: frame j's contribution to output sample (j + i) * s + t.
        contrib = torch.matmul(x.transpose(1, 2), self.weight.reshape(c_in, -1))
        contrib = contrib.reshape(b, n, self.out_channels, m, s).permute(0, 2, 3, 1, 4)
        y = x.new_zeros(b, self.out_channels, n + m - 1, s)
        for i in range(m):
            y[:, :, i:i + n] += contrib[:, :, i]
        return y.reshape(b, self.out_channels, (n + m - 1) * s)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._no_bias(x)[..., : x.shape[-1] * self.stride[0]]
        return y + self.bias[:, None] if self.bias is not None else y

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        s = self.stride[0]
        tail_len = self.kernel_size[0] - s
        n = x.shape[-1]
        if n == 0:
            return x.new_zeros(x.shape[0], self.out_channels, 0)
        y = self._stream_no_bias(x)  # (B, C, (n-1)*s + k)
        tail = state.get(self)
        if tail is not None and tail_len > 0:
            y = torch.cat([y[..., :tail_len] + tail, y[..., tail_len:]], dim=-1)
        state[self] = y[..., n * s:]
        out = y[..., : n * s]
        return out + self.bias[:, None] if self.bias is not None else out


class CausalResidualUnit(nn.Module):
    """ELU -> dilated causal conv (kernel 7) -> ELU -> 1x1 conv, plus the input (SoundStream).

    Shapes: ``(batch, channels, T)`` -> same.
    """

    def __init__(self, channels: int, dilation: int, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv1 = CausalConv1d(channels, channels, kernel_size, dilation=dilation)
        self.conv2 = CausalConv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(elu(self.conv1(elu(x))))

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        # Stride 1 everywhere: output length == input length, so the skip lines up.
        return x + self.conv2.forward_stream(elu(self.conv1.forward_stream(elu(x), state)),
                                             state)


class StreamingSequential(nn.Sequential):
    """``nn.Sequential`` of causal modules and pointwise activations that can also stream."""

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        for m in self:
            if hasattr(m, "forward_stream"):
                x = m.forward_stream(x, state)
            elif x.shape[-1] > 0:  # pointwise (ELU, identity): no state needed
                x = m(x)
        return x
