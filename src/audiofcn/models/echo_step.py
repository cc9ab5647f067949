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
* The opt-in full-resolution refinement (``refine_channels``) spans one frame: one im2col
  product per layer for all decoders; with ``refine_history > 1`` the reference's last frames
  per bin are kept in a small buffer and applied in one more product.

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


def _prelu(y: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    """PReLU with slopes broadcast over ``y`` (per decoder and channel), overwriting ``y``:
    ``max(y, 0) + slope * min(y, 0)``, the same numbers as ``torch.where(y >= 0, y, slope *
    y)`` in two kernels instead of three."""
    neg = y.clamp_max(0)
    return y.clamp_min_(0).addcmul_(neg, slope)


def _bias(conv: ComplexConv2d | ComplexConvTranspose2d, n: int) -> torch.Tensor:
    if conv.bias_real is None:
        return conv.weight_real.new_zeros(n).detach()
    return torch.cat([conv.bias_real, conv.bias_imag]).detach()


class _EncoderStep:
    """A ``(kF, 2)`` complex conv with frequency stride, BN and PReLU on one frame.

    The input lives in a zero-padded ``(B, F + 2*pad, 2*in)`` buffer (:meth:`buffer`) that
    the caller fills; out: ``(B, F', 2*out)``. ``carry`` ``(B, F', 2*out)`` is the previous
    frame's contribution through the ``t-1`` tap (zeros at the start, as the offline left
    padding).
    """

    def __init__(self, conv: ComplexConv2d, act: nn.Sequential) -> None:
        if conv.kernel_size[1] != 2 or conv.dilation != (1, 1):
            raise ValueError("the fast path needs encoder kernels (kF, 2) without dilation")
        w = conv.real_weight().detach()  # (2out, 2in, kF, 2): taps t-1, t
        scale, shift = _bn_affine(act[0])
        o = w.shape[0]
        # columns k * 2in + c: a patch is kF consecutive rows of the position-major buffer
        cur = w[..., 1].permute(0, 2, 1).reshape(o, -1) * scale[:, None]
        prev = w[..., 0].permute(0, 2, 1).reshape(o, -1) * scale[:, None]
        self.weight = torch.cat([cur, prev]).contiguous()
        self.bias = torch.cat([_bias(conv, o) * scale + shift, w.new_zeros(o)])
        self.slope = act[1].weight.detach()
        self.cin, self.out = w.shape[1], o
        self.k, self.stride, self.pad = conv.kernel_size[0], conv.stride_freq, conv.padding_freq

    def out_size(self, f: int) -> int:
        return (f + 2 * self.pad - self.k) // self.stride + 1

    def buffer(self, batch: int, f: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The zero-padded input buffer and its interior ``(B, F, 2*in)`` view."""
        buf = self.weight.new_zeros(batch, f + 2 * self.pad, self.cin)
        return buf, buf[:, self.pad:self.pad + f]

    def __call__(self, buf: torch.Tensor, carry: torch.Tensor) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
        b, fp, c = buf.shape
        n = (fp - self.k) // self.stride + 1
        cols = buf.as_strided((b, n, self.k * c), (fp * c, self.stride * c, 1))
        y = F.linear(cols, self.weight, self.bias)
        h = y[..., :self.out] + carry
        return F.prelu(h.view(-1, self.out), self.slope).view(h.shape), y[..., self.out:]


class _UpStep:
    """The ``d``-th transposed conv of every decoder at once, as a polyphase product.

    Output position ``s*q + r`` (before cropping the padding) is phase ``r`` of row ``q``:
    ``sum_u W[r + u*s] h[q - u]``, ``u < T = ceil(kF / s)``. The input lives in a buffer
    ``(D, B, P + 2*(T-1), 2*in)`` zero-padded by ``T-1`` rows (:meth:`buffer`); out:
    ``(D, B, P', 2*out)``.
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
                scale, shift, slope = w.new_ones(cout), w.new_zeros(cout), None
            else:
                (scale, shift), slope = _bn_affine(act[0]), act[1].weight.detach()
            wp = F.pad(w, (0, t * s - kf))  # (cin, cout, T*s): k = r + u*s
            wp = wp.reshape(cin, cout, t, s).flip(2)  # [.., v, r] with v = T-1-u
            # rows: (v, cin), a patch is T consecutive buffer rows; columns: (r, cout)
            m = (wp * scale[None, :, None, None]).permute(2, 0, 3, 1).reshape(t * cin, s * cout)
            weights.append(m)
            biases.append((_bias(up, cout) * scale + shift).repeat(s)[None])
            slopes.append(slope)
        self.weight = torch.stack(weights).contiguous()  # (D, T*cin, s*cout)
        self.bias = torch.stack(biases)  # (D, 1, s*cout)
        self.cin, self.cout = cin, cout
        self.slope = None if slopes[0] is None else torch.stack(slopes)[:, None, None]

    def out_size(self, p: int) -> int:
        return (p - 1) * self.stride - 2 * self.pad + self.kernel + self.outpad

    def buffer(self, d: int, batch: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
        buf = self.weight.new_zeros(d, batch, p + 2 * (self.taps - 1), self.cin)
        return buf, buf[:, :, self.taps - 1:self.taps - 1 + p]

    def __call__(self, buf: torch.Tensor) -> torch.Tensor:
        d, b, pp, c = buf.shape
        t = self.taps
        q = pp - t + 1
        cols = buf.as_strided((d, b * q, t * c), (b * pp * c, c, 1)) if b == 1 else \
            buf.unfold(2, t, 1).transpose(-1, -2).reshape(d, b * q, t * c)
        y = torch.baddbmm(self.bias, cols, self.weight)
        n = self.out_size(pp - 2 * (t - 1))
        y = y.view(d, b, q * self.stride, self.cout)[:, :, self.pad:self.pad + n]
        if self.slope is None:
            return y
        return _prelu(y, self.slope)


class _RefineStep:
    """Every decoder's full-resolution refinement (``echo._Refine``) on one frame.

    Its frequency kernels span one frame. A layer is one ``baddbmm`` (one batch entry per
    decoder, BatchNorm folded) on the dilated im2col patches of a position-major
    ``(D, B, F, 2C)`` activation: on one thread several times faster than a grouped
    ``conv1d`` on these small maps. The optional reference-history conv is one more product
    on the carried ``(B, F, history, 2)`` buffer of past reference frames.
    """

    def __init__(self, refines: list[nn.Module]) -> None:
        self.n = n = refines[0].inputs  # complex network inputs (the reference is the last)
        self.layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int,
                                int, int]] = []
        convs = [[*r.convs, r.out] for r in refines]
        acts = [[*r.acts, None] for r in refines]
        self.history = 0
        self.history_w: torch.Tensor | None = None  # (D, history * 2, 2C), rows (tap, re/im)
        history_b = None  # (D, 1, 2C): folded into the first layer's bias below
        if refines[0].history is not None:
            hs, hb = [], []
            for r in refines:
                scale, _ = _bn_affine(r.acts[0][0])  # the first layer's BatchNorm
                w = r.history.real_weight().detach()[:, :, 0] * scale[:, None, None]
                hs.append(w.permute(2, 1, 0).reshape(-1, w.shape[0]))  # (2out, 2, k) -> rows
                hb.append(_bias(r.history, w.shape[0]) * scale)
            self.history = refines[0].history.kernel_size[1]
            self.history_w = torch.stack(hs).contiguous()
            history_b = torch.stack(hb)[:, None]
        for i in range(len(convs[0])):
            ws, bs, ss = [], [], []
            for conv, act in zip((c[i] for c in convs), (a[i] for a in acts), strict=True):
                w = conv.real_weight().detach()[..., 0]  # (2out, 2in, k)
                b = _bias(conv, w.shape[0])
                if i == 0:  # input channels [coarse re, coarse im, inputs re, inputs im]:
                    # one cat builds them (offline: [coarse re, inputs re, coarse im, ...])
                    w = w[:, [0, n + 1, *range(1, n + 1), *range(n + 2, 2 * n + 2)]]
                if act is not None:
                    scale, shift = _bn_affine(act[0])
                    w, b = w * scale[:, None, None], b * scale + shift
                    ss.append(act[1].weight.detach())
                ws.append(w.permute(2, 1, 0).reshape(-1, w.shape[0]))  # rows (tap, in)
                bs.append(b[None])
            first = convs[0][i]
            self.layers.append((torch.stack(ws).contiguous(), torch.stack(bs),
                                torch.stack(ss)[:, None, None] if ss else None,
                                first.kernel_size[0], first.dilation[0], first.padding_freq))
        if history_b is not None:
            w, b, *rest = self.layers[0]
            self.layers[0] = (w, b + history_b, *rest)
        # a layer with very few outputs (the last: re/im) runs transposed, W^T cols^T:
        # a (D, 2, K) x (D, K, F) product is several times faster than (D, F, K) x (D, K, 2)
        self.transposed = [i > 0 and w.shape[-1] <= 4 for i, (w, *_) in enumerate(self.layers)]
        self.layers = [(w.transpose(1, 2).contiguous(), b.transpose(1, 2).contiguous(), *rest)
                       if t else (w, b, *rest)
                       for (w, b, *rest), t in zip(self.layers, self.transposed, strict=True)]

    def buffer(self, batch: int, n_freqs: int) -> torch.Tensor | None:
        """Past reference frames per bin, oldest first (zeros: the offline left padding)."""
        if self.history_w is None:
            return None
        return self.history_w.new_zeros(batch, n_freqs, self.history, 2)

    def __call__(self, coarse: torch.Tensor, feats: torch.Tensor,
                 ref_history: torch.Tensor | None) -> torch.Tensor:
        # coarse (D, B, F, 2) [re, im]; feats (B, F, 2n) [inputs re, inputs im]
        d, b, f, _ = coarse.shape
        n = self.n
        h = torch.cat([coarse, feats.expand(d, b, f, 2 * n)], dim=-1)
        if ref_history is not None:  # shift in this frame's reference
            ref_history[:, :, :-1] = ref_history[:, :, 1:].clone()
            ref_history[:, :, -1] = feats[..., n - 1::n]
        for i, (w, bias, slope, k, dil, pad) in enumerate(self.layers):
            buf = F.pad(h, (0, 0, pad, pad))
            fp, c = buf.shape[-2:]
            cols = buf.as_strided((d, b, f, k, c), (b * fp * c, fp * c, c, dil * c, 1))
            if i == 0 and ref_history is not None:
                bias = torch.baddbmm(bias, ref_history.view(1, b * f, -1).expand(d, -1, -1),
                                     self.history_w)
            cols = cols.reshape(d, b * f, k * c)
            if self.transposed[i]:
                h = torch.baddbmm(bias, w, cols.transpose(1, 2)).transpose(1, 2).reshape(
                    d, b, f, -1)
            else:
                h = torch.baddbmm(bias, cols, w).view(d, b, f, -1)
            if slope is not None:
                h = _prelu(h, slope)
        return coarse + h


class FrameState:
    """Per-stream state of an :class:`EchoFrameStep`: zero-padded layer input buffers
    (their margins stay zero), carried partial sums and dense-block histories."""

    def __init__(self, step: EchoFrameStep, batch: int) -> None:
        self.enc = [e.buffer(batch, f) for e, f in zip(step.encoder, step.sizes, strict=False)]
        self.carry = [e.weight.new_zeros(batch, f, e.out)
                      for e, f in zip(step.encoder, step.sizes[1:], strict=True)]
        # decoder inputs: ups[i] reads what has the size of encoder level -1 - i
        self.dec = [u.buffer(step.n_masks, batch, f)
                    for u, f in zip(step.ups, step.sizes[::-1], strict=False)]
        self.blocks: list[Any] = [None] * len(step.blocks)
        self.ref_history = None if step.refine is None else step.refine.buffer(batch,
                                                                              step.sizes[0])
        # features: the first buffer's interior as (B, signal, F, re/im)
        inner = self.enc[0][1]
        self.features = inner.view(batch, inner.shape[1], 2, step.inputs).permute(0, 3, 1, 2)


class EchoFrameStep:
    """Precomputed weights of an eval-mode :class:`EchoCanceller` and its per-frame step."""

    def __init__(self, model: EchoCanceller) -> None:
        cfg = model.config
        self.compress = cfg.compress - 1.0
        # complex inputs: [mic, ref] or, hybrid, [mic, linear, echo, ref]; the masks act on
        # the microphone or, hybrid, on the linear output
        self.inputs = model.encoder[0].weight_real.shape[1]
        self.target = 1 if cfg.hybrid else 0
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
        refines = [d.refine for d in decs]
        self.refine = None if refines[0] is None else _RefineStep(refines)

    def initial_state(self, batch: int) -> FrameState:
        """Zero buffers and carries (the offline left padding), empty block histories."""
        return FrameState(self, batch)

    def step(self, spec: torch.Tensor, state: FrameState) -> torch.Tensor:
        """One frame: complex ``(B, 2, F)`` microphone and reference spectra (hybrid: ``(B, 4,
        F)`` microphone, linear output, echo estimate, reference) -> complex ``(B, F)``
        near-end estimate; ``state`` (from :meth:`initial_state`) is updated."""
        b = spec.shape[0]
        # power-law compression X |X|^(c-1), written straight into the first conv's buffer
        # as channels [mic re, ref re, mic im, ref im] (complex_to_channels of the inputs)
        scale = spec.abs().clamp_min_(1e-8).pow_(self.compress)
        torch.mul(torch.view_as_real(spec), scale[..., None], out=state.features)
        skips = []
        ne = len(self.encoder)
        for i, enc in enumerate(self.encoder):
            h, state.carry[i] = enc(state.enc[i][0], state.carry[i])
            if i + 1 < ne:
                state.enc[i + 1][1].copy_(h)
            skips.append(h)
        v = F.prelu(F.linear(h.view(b, -1), self.fold_w, self.fold_b), self.fold_slope)
        for j, blk in enumerate(self.blocks):
            v, state.blocks[j] = blk.step(v, state.blocks[j])
        u = F.prelu(F.linear(v, self.unfold_w, self.unfold_b), self.unfold_slope)
        torch.add(u.view(b, self.n_masks, self.fd, self.c2).transpose(0, 1), skips[-1],
                  out=state.dec[0][1])
        for i, up in enumerate(self.ups):
            h = up(state.dec[i][0])
            if i + 1 < len(self.ups):
                torch.add(h, skips[ne - 2 - i], out=state.dec[i + 1][1])
        if self.refine is not None:
            h = self.refine(h, state.enc[0][1], state.ref_history).contiguous()
        m = torch.view_as_complex(h)  # (D, B, F): [re, im] is the last axis
        mag = m.abs()
        masks = m * torch.tanh(mag).div_(mag.clamp_min_(1e-8))  # bounded_complex_mask
        return (masks[0] if self.n_masks == 1 else masks.prod(0)) * spec[:, self.target]
