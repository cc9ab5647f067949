"""Pseudo-complex convolutions: complex-valued layers computed with real arithmetic.

A complex tensor ``z = a + ib`` with ``C`` channels is carried as a real tensor with ``2C``
channels, real parts first then imaginary parts (``(batch, 2C, freq, time)``), so that BN,
activations, concatenation and every PyTorch kernel work unchanged. A complex weight
``W = P + iQ`` acts as ``W z = (P a - Q b) + i (Q a + P b)``; we build the real block weight
``[[P, -Q], [Q, P]]`` once per call and run ONE real convolution, which is both the
"pseudo-complex" formulation of Watcharasupat et al. (2022) and the fastest one on CPU.
``tests/nn/test_complex.py`` checks the result against PyTorch's native complex convolution.

Time is the last axis and causal: a kernel spanning ``k`` frames with dilation ``d`` looks at
``(k-1)*d`` past frames only. :meth:`ComplexConv2d.forward_stream` caches exactly those frames
in a caller-owned ``dict`` (the convention of :mod:`audiofcn.nn.causal`), so a stream fed frame
by frame equals the offline ``forward``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

StreamState = dict[Any, Any]


def complex_to_channels(z: torch.Tensor) -> torch.Tensor:
    """Complex ``(batch, C, ...)`` -> real ``(batch, 2C, ...)`` (real parts, then imaginary)."""
    return torch.cat([z.real, z.imag], dim=1)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """Real ``(batch, 2C, ...)`` -> complex ``(batch, C, ...)`` (inverse of the above)."""
    c = x.shape[1] // 2
    return torch.complex(x[:, :c].contiguous(), x[:, c:].contiguous())


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class ComplexConv2d(nn.Module):
    """Complex 2-D convolution over (frequency, time), causal in time.

    ``padding_freq`` defaults to "same" for stride 1 (``(kF-1)*dF // 2`` each side). Time is
    never strided; it is padded on the left by ``(kT-1)*dT`` frames so that frame ``t`` of the
    output depends on input frames ``<= t``.

    Shapes: ``(batch, 2*in_channels, F, T)`` -> ``(batch, 2*out_channels, F', T)`` with
    ``F' = (F + 2*padding_freq - dF*(kF-1) - 1) // stride_freq + 1``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 kernel_size: int | tuple[int, int] = (3, 2), *, stride_freq: int = 1,
                 dilation: int | tuple[int, int] = 1, padding_freq: int | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.dilation = _pair(dilation)
        self.stride_freq = stride_freq
        kf, kt = self.kernel_size
        self.padding_freq = (kf - 1) * self.dilation[0] // 2 if padding_freq is None \
            else padding_freq
        self.context = (kt - 1) * self.dilation[1]  # past frames this conv needs
        shape = (out_channels, in_channels, kf, kt)
        self.weight_real = nn.Parameter(torch.empty(shape))
        self.weight_imag = nn.Parameter(torch.empty(shape))
        self.bias_real = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.bias_imag = nn.Parameter(torch.zeros(out_channels)) if bias else None
        # Complex He-style init: Var(Re W) = Var(Im W) = 1 / (2 fan_in), so |W z| keeps scale.
        std = 1.0 / math.sqrt(2 * in_channels * kf * kt)
        nn.init.normal_(self.weight_real, std=std)
        nn.init.normal_(self.weight_imag, std=std)

    def real_weight(self) -> torch.Tensor:
        """The real block weight ``[[P, -Q], [Q, P]]``: ``(2*out, 2*in, kF, kT)``."""
        p, q = self.weight_real, self.weight_imag
        return torch.cat([torch.cat([p, -q], dim=1), torch.cat([q, p], dim=1)], dim=0)

    def real_bias(self) -> torch.Tensor | None:
        if self.bias_real is None:
            return None
        return torch.cat([self.bias_real, self.bias_imag])

    def _weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.training or torch.is_grad_enabled():
            return self.real_weight(), self.real_bias()
        # Inference: build the block weight once. The key changes whenever the parameters are
        # modified in place (optimizer step, load_state_dict) or replaced (.to()).
        key = tuple((t._version, t.data_ptr()) for t in (self.weight_real, self.weight_imag,
                                                          self.bias_real, self.bias_imag)
                    if t is not None)
        cached = getattr(self, "_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, self.real_weight().detach(), None if self.bias_real is None
                      else self.real_bias().detach())
            self._cache = cached
        return cached[1], cached[2]

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self._weights()
        return F.conv2d(x, w, b, stride=(self.stride_freq, 1), dilation=self.dilation,
                        padding=(self.padding_freq, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv(F.pad(x, (self.context, 0)))

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        """``x``: the next ``n >= 1`` frames ``(batch, 2*in, F, n)``; returns ``n`` frames."""
        if self.context == 0:
            if x.shape[-2] == 1 and self.kernel_size[0] == 1 and not torch.is_grad_enabled():
                return self._time_only(x, x.shape[-1])  # a 1x1 conv on one bin: a matmul
            return self._conv(x)
        buf = state.get(self)
        if buf is None:  # the zeros that forward() pads with
            buf = x.new_zeros(*x.shape[:-1], self.context)
        buf = torch.cat([buf, x], dim=-1)
        state[self] = buf[..., -self.context:]
        if x.shape[-2] == 1 and self.kernel_size[0] == 1 and self.stride_freq == 1:
            return self._time_only(buf, x.shape[-1])
        return self._conv(buf)

    def _time_only(self, buf: torch.Tensor, n: int) -> torch.Tensor:
        # A kernel over time only on one frequency bin is a matrix product over stacked taps;
        # on a few frames this is several times faster than the (dilated) conv2d kernels.
        w, b = self._weights()
        o, i, _, kt = w.shape
        lin = getattr(self, "_linear_cache", None)
        if lin is None or lin[0] is not w:  # (2*out, kT * 2*in), taps outermost
            lin = (w, w[:, :, 0].permute(0, 2, 1).reshape(o, kt * i).contiguous())
            if not torch.is_grad_enabled():
                self._linear_cache = lin
        dil = self.dilation[1]
        taps = torch.cat([buf[:, :, 0, k * dil:k * dil + n] for k in range(kt)], dim=1)
        y = F.linear(taps.transpose(1, 2), lin[1], b)
        return y.transpose(1, 2).unsqueeze(2)


class ComplexConvTranspose2d(nn.Module):
    """Complex transposed convolution along frequency (upsampling by ``stride_freq``); it spans
    one frame in time, so it is trivially causal and stateless.

    Shapes: ``(batch, 2*in_channels, F, T)`` ->
    ``(batch, 2*out_channels, (F-1)*stride - 2*padding + kF + output_padding, T)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_freq: int = 5, *,
                 stride_freq: int = 2, padding_freq: int | None = None,
                 output_padding: int = 0, bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride_freq = stride_freq
        self.padding_freq = (kernel_freq - 1) // 2 if padding_freq is None else padding_freq
        self.output_padding = output_padding
        shape = (in_channels, out_channels, kernel_freq, 1)  # conv_transpose layout
        self.weight_real = nn.Parameter(torch.empty(shape))
        self.weight_imag = nn.Parameter(torch.empty(shape))
        self.bias_real = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.bias_imag = nn.Parameter(torch.zeros(out_channels)) if bias else None
        std = 1.0 / math.sqrt(2 * in_channels * kernel_freq / stride_freq)
        nn.init.normal_(self.weight_real, std=std)
        nn.init.normal_(self.weight_imag, std=std)

    def real_weight(self) -> torch.Tensor:
        # Input rows (re, im) x output columns (re, im): re->re P, re->im Q, im->re -Q, im->im P.
        p, q = self.weight_real, self.weight_imag
        return torch.cat([torch.cat([p, q], dim=1), torch.cat([-q, p], dim=1)], dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias_real is None else torch.cat([self.bias_real, self.bias_imag])
        return F.conv_transpose2d(x, self.real_weight(), bias, stride=(self.stride_freq, 1),
                                  padding=(self.padding_freq, 0),
                                  output_padding=(self.output_padding, 0))

    def forward_stream(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        return self.forward(x)


class ComplexBNAct(nn.Sequential):
    """BatchNorm on real and imaginary parts separately (the "naive" complex BN of the
    pseudo-complex formulation) followed by a per-part PReLU. Frame-wise, hence causal.

    Shapes: ``(batch, 2*channels, F, T)`` -> same.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(nn.BatchNorm2d(2 * channels), nn.PReLU(2 * channels))


def bounded_complex_mask(mask: torch.Tensor) -> torch.Tensor:
    """Real ``(batch, 2, F, T)`` network output -> complex mask ``(batch, F, T)`` whose
    magnitude is squashed by ``tanh`` into ``[0, 1)`` and whose phase is free (DCCRN-E style):
    the mask can only attenuate, but can rotate the phase to cancel an echo component."""
    m = channels_to_complex(mask)[:, 0]
    mag = m.abs()
    return m * (torch.tanh(mag) / mag.clamp_min(1e-8))
