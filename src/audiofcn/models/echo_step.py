"""Inference-only fast path of :class:`~audiofcn.models.echo.EchoCanceller`: one STFT frame in,
one near-end frame out, with the weights precomputed once per stream.

The layer-by-layer streaming path (``forward_stream``) costs hundreds of small kernels per
10 ms hop, and on one CPU thread their dispatch, not the arithmetic, dominated. Here every
layer is one matrix product on a "position-major" ``(..., positions, channels)`` activation
and nothing else changes in the arithmetic:

* **BatchNorm folded** into the preceding weights and bias (eval statistics).
* **Causal time taps as carried partial sums.** An encoder conv spans frames ``t-1`` and
  ``t``; both taps are applied to the *current* frame in one product with stacked weights
  ``[W_t; W_{t-1}]``: the first half is added to the partial carried from the previous frame,
  the second half is carried to the next. No input frames are cached or concatenated.
* **Strided frequency convs as im2col products**, transposed convs as polyphase products
  (stride ``s``: ``s`` output phases, each a short conv), the two decoders batched into one
  ``baddbmm`` per stage and their unfold layers stacked into one matrix.
* The dense blocks use :class:`~audiofcn.nn.multidilated.FusedDenseBlockStep`.

Results equal ``forward`` up to float rounding (``tests/models/test_echo.py``). The weights
are read when the step is built; :meth:`EchoCanceller.open_stream` rebuilds it when any
parameter or BatchNorm statistic has changed since.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn.complex import ComplexConv2d, ComplexConvTranspose2d
from audiofcn.nn.multidilated import FusedDenseBlockStep

if TYPE_CHECKING:
    from audiofcn.models.echo import EchoCanceller


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias.detach() - bn.running_mean * scale


def _bias(conv: ComplexConv2d | ComplexConvTranspose2d, n: int) -> torch.Tensor:
    if conv.bias_real is None:
        return torch.zeros(n)
    return torch.cat([conv.bias_real, conv.bias_imag]).detach()


class _EncoderStep:
    """A ``(kF, 2)`` complex conv with frequency stride, BN and PReLU on one frame.

    In: ``(B, F, 2*in)``; out: ``(B, F', 2*out)``; ``carry``: ``(B, F', 2*out)``, the
    previous frame's contribution through the ``t-1`` tap (zeros at the start, as the
    offline left padding).
    """

    def __init__(self, conv: ComplexConv2d, act: nn.Sequential) -> None:
        if conv.kernel_size[1] != 2 or conv.dilation != (1, 1):
            raise ValueError("the fast path needs encoder kernels (kF, 2) without dilation")
        w = conv.real_weight().detach()  # (2out, 2in, kF, 2): taps t-1, t
        scale, shift = _bn_affine(act[0])
        o = w.shape[0]
        cur = w[..., 1].reshape(o, -1) * scale[:, None]  # columns: c * kF + k (unfold order)
        prev = w[..., 0].reshape(o, -1) * scale[:, None]
        self.weight = torch.cat([cur, prev]).contiguous()
        self.bias = torch.cat([_bias(conv, o) * scale + shift, torch.zeros(o)])
        self.slope = act[1].weight.detach()
        self.out = o
        self.k, self.stride, self.pad = conv.kernel_size[0], conv.stride_freq, conv.padding_freq

    def out_size(self, f: int) -> int:
        return (f + 2 * self.pad - self.k) // self.stride + 1

    def __call__(self, x: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor,
                                                                     torch.Tensor]:
        b = x.shape[0]
        cols = F.pad(x, (0, 0, self.pad, self.pad)).unfold(1, self.k, self.stride)
        y = F.linear(cols.reshape(b, cols.shape[1], -1), self.weight, self.bias)
        h = y[..., :self.out] + carry
        return F.prelu(h.reshape(-1, self.out), self.slope).reshape(h.shape), y[..., self.out:]


class _UpStep:
    """The ``d``-th transposed conv of every decoder at once, as a polyphase product.

    Output position ``s*q + r`` (before cropping the padding) is phase ``r`` of row ``q``:
    ``sum_u W[r + u*s] h[q - u]``, ``u < T = ceil(kF / s)``. In: ``(D, B, P, 2*in)``;
    out: ``(D, B, P', 2*out)``.
    """

    def __init__(self, ups: list[ComplexConvTranspose2d], acts: list[nn.Module]) -> None:
        first = ups[0]
        kf = first.weight_real.shape[2]
        s = first.stride_freq
        self.taps = t = math.ceil(kf / s)
        self.kernel = kf
        self.stride, self.pad, self.outpad = s, first.padding_freq, first.output_padding
        if kf + self.outpad - self.pad > t * s:
            raise ValueError("output_padding too large for the polyphase fast path")
        weights, biases, slopes = [], [], []
        for up, act in zip(ups, acts, strict=True):
            w = up.real_weight().detach()[..., 0]  # (2in, 2out, kF)
            cin, cout = w.shape[:2]
            if isinstance(act, nn.Identity):
                scale, shift, slope = torch.ones(cout), torch.zeros(cout), None
            else:
                (scale, shift), slope = _bn_affine(act[0]), act[1].weight.detach()
            wp = F.pad(w, (0, t * s - kf))  # (cin, cout, T*s): k = r + u*s
            wp = wp.reshape(cin, cout, t, s).flip(2)  # [.., v, r] with v = T-1-u
            # rows: (cin, v) as unfold gives them; columns: (r, cout) = output phase, channel
            m = (wp * scale[None, :, None, None]).permute(0, 2, 3, 1).reshape(cin * t, s * cout)
            weights.append(m)
            biases.append((_bias(up, cout) * scale + shift).repeat(s)[None])
            slopes.append(slope)
        self.weight = torch.stack(weights).contiguous()  # (D, cin*T, s*cout)
        self.bias = torch.stack(biases)  # (D, 1, s*cout)
        self.cout = cout
        self.slope = None if slopes[0] is None else torch.stack(slopes)[:, None, None]

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        d, b, p, _ = h.shape
        t = self.taps
        cols = F.pad(h, (0, 0, t - 1, t - 1)).unfold(2, t, 1)  # (D, B, Q, cin, T)
        q = cols.shape[2]
        y = torch.baddbmm(self.bias, cols.reshape(d, b * q, -1), self.weight)
        n = (p - 1) * self.stride - 2 * self.pad + self.kernel + self.outpad
        y = y.view(d, b, q * self.stride, self.cout)[:, :, self.pad:self.pad + n]
        if self.slope is None:
            return y
        return torch.where(y >= 0, y, y * self.slope)


class EchoFrameStep:
    """Precomputed weights of an eval-mode :class:`EchoCanceller` and its per-frame step."""

    def __init__(self, model: EchoCanceller) -> None:
        cfg = model.config
        self.compress = (cfg.compress - 1.0) / 2.0  # applied to |X|^2
        self.encoder = [_EncoderStep(c, a) for c, a in zip(model.encoder, model.encoder_acts,
                                                            strict=True)]
        self.sizes = [cfg.stft.n_freqs]
        for e in self.encoder:
            self.sizes.append(e.out_size(self.sizes[-1]))
        c2, fd = self.encoder[-1].out, self.sizes[-1]  # last encoder: 2C real channels x F'
        # fold: the offline input index is channel * F' + f; ours is f * 2C + channel
        w = model.fold.real_weight().detach()[:, :, 0, 0]
        scale, shift = _bn_affine(model.fold_act[0])
        w = w.reshape(-1, c2, fd).permute(0, 2, 1).reshape(w.shape[0], -1)
        self.fold_w = (w * scale[:, None]).contiguous()
        self.fold_b = _bias(model.fold, w.shape[0]) * scale + shift
        self.fold_slope = model.fold_act[1].weight.detach()
        self.blocks = [FusedDenseBlockStep(b) for b in model.blocks]
        decs = list(model.decoders.values())
        self.n_masks = len(decs)
        # decoder unfold, stacked: output rows reordered from channel * F' + f to f * 2C + c
        ws, bs, ss = [], [], []
        for dec in decs:
            w = dec.unfold.real_weight().detach()[:, :, 0, 0]
            scale, shift = _bn_affine(dec.unfold_act[0])
            b = _bias(dec.unfold, w.shape[0]) * scale + shift

            def perm(v: torch.Tensor) -> torch.Tensor:
                return v.reshape(c2, fd, *v.shape[1:]).transpose(0, 1).reshape(v.shape)

            ws.append(perm(w * scale[:, None]))
            bs.append(perm(b))
            ss.append(perm(dec.unfold_act[1].weight.detach()))
        self.unfold_w = torch.cat(ws).contiguous()
        self.unfold_b, self.unfold_slope = torch.cat(bs), torch.cat(ss)
        self.ups = [_UpStep([d.ups[i] for d in decs], [d.acts[i] for d in decs])
                    for i in range(len(decs[0].ups))]
        self.c2, self.fd = c2, fd

    def initial_state(self, batch: int) -> list[Any]:
        """Carried partial sums (zeros) and dense-block histories (``None``: start)."""
        return [torch.zeros(batch, f, e.out) for e, f in zip(self.encoder, self.sizes[1:],
                                                              strict=True)] + \
            [None] * len(self.blocks)

    def step(self, spec: torch.Tensor, state: list[Any]) -> torch.Tensor:
        """One frame: complex ``(B, 2, F)`` microphone and reference spectra -> complex
        ``(B, F)`` near-end estimate; ``state`` (from :meth:`initial_state`) is updated."""
        b = spec.shape[0]
        ri = torch.view_as_real(spec)  # (B, 2, F, 2): signal, bin, re/im
        scale = ri.square().sum(-1, keepdim=True).clamp_min(1e-16).pow(self.compress)
        # channels [mic re, ref re, mic im, ref im], as complex_to_channels of (mic, ref)
        h = (ri * scale).permute(0, 2, 3, 1).reshape(b, spec.shape[-1], 4)
        skips = []
        ne = len(self.encoder)
        for i, enc in enumerate(self.encoder):
            h, state[i] = enc(h, state[i])
            skips.append(h)
        v = F.prelu(F.linear(h.reshape(b, -1), self.fold_w, self.fold_b), self.fold_slope)
        for j, blk in enumerate(self.blocks):
            v, state[ne + j] = blk.step(v, state[ne + j])
        u = F.prelu(F.linear(v, self.unfold_w, self.unfold_b), self.unfold_slope)
        h = u.view(b, self.n_masks, self.fd, self.c2).transpose(0, 1) + skips[-1]
        for i, up in enumerate(self.ups):
            h = up(h)
            if i + 2 <= ne:
                h = h + skips[ne - 2 - i]
        m = torch.view_as_complex(h)  # (D, B, F): [re, im] is the last axis
        mag = m.abs()
        masks = m * (torch.tanh(mag) / mag.clamp_min(1e-8))
        out = masks[0] * spec[:, 0]
        for k in range(1, self.n_masks):
            out = masks[k] * out
        return out
