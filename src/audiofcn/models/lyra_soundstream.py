"""The SoundStream of Google's Lyra v2 (Apache-2.0), as a trainable PyTorch model.

Lyra v2 ships its codec as three TFLite graphs (``soundstream_encoder``, ``quantizer``,
``lyragan``); ``recipes/codec/convert_lyra.py`` maps their tensors onto this model. The
architecture, read from the graphs:

Encoder (16 kHz, 320 samples -> one 64-d frame, 50 frames/s):
causal conv (kernel 64, stride 16, 1 -> 64) -> 3 blocks [3 residual units (depthwise kernel-3
convs with dilations 1, 3, 9, then 1x1 conv, leaky ReLU, grouped 1x1 conv), leaky ReLU, grouped
strided conv (kernel 2*stride) doubling the channels], strides 5, 2, 2 -> leaky ReLU ->
grouped conv (kernel 3, 512 -> 64). Leaky ReLU slope 0.3 everywhere.

Quantizer: residual VQ, 46 codebooks of 16 codes (4 bits): 3.2 / 6 / 9.2 kbps = 16 / 30 / 46
quantizers (:class:`audiofcn.nn.quantizer.ResidualVectorQuantizer`).

Decoder: grouped conv (kernel 3, 64 -> 512) -> 3 blocks [leaky ReLU, grouped causal transposed
conv (kernel 2*stride) halving the channels, 3 residual units], strides 2, 2, 5 -> leaky ReLU ->
transposed conv (kernel 64, stride 16, 64 -> 1). Output in [-1, 1] full scale (not clipped).

The last encoder block and the first two decoder blocks run in int8 in the original. In training
(``forward``) the port rounds the same activations with
:class:`~audiofcn.nn.quantized_causal.FakeQuant` (the list of rounded layers is
``config.quantized``; gradients pass straight through), and so do ``encode``/``decode`` by
default. With ``arithmetic="xnnpack"`` (or ``model.arithmetic = "xnnpack"``) they run those
layers with XNNPACK's int8 arithmetic: what TFLite with XNNPACK, Lyra's own runtime, computes;
with ``"tflite"`` with TFLite's reference kernels' (float layers before them and the residual
VQ in the reference order): bit for bit what those compute. Both about 2x slower; their
parameters are ``config.int8_kernels``. Everything is causal; streaming
(``encode_stream`` / ``decode_stream``) gives the offline output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audiofcn.frontend.checks import as_mono_batch
from audiofcn.models.base import PretrainedModel
from audiofcn.nn import tflite_int8
from audiofcn.nn.quantized_causal import (
    Cache,
    QCausalConv1d,
    QCausalConvTranspose1d,
    QLeakyReLU,
    QResidualUnit,
    int8_arithmetic,
)
from audiofcn.nn.quantizer import FrozenRVQ, ResidualVectorQuantizer, RVQOutput

KBPS_TO_NQ = {3.2: 16, 6.0: 30, 9.2: 46}  # Lyra's three bitrates


@dataclass
class LyraSoundStreamConfig:
    sample_rate: int = 16000
    channels: int = 64  # after the first conv; doubles in each encoder block
    first_kernel: int = 64
    first_stride: int = 16
    strides: tuple[int, ...] = (5, 2, 2)  # encoder blocks; the decoder mirrors them
    dilations: tuple[int, ...] = (1, 3, 9)
    group_width: int = 64  # input channels per group of the 1x1 and strided convs
    up_group_width: int = 128  # input channels per group of the transposed convs
    bottleneck_groups: int = 4
    embedding_dim: int = 64
    num_quantizers: int = 46
    codebook_size: int = 16
    slope: float = 0.3
    quantizer_dropout: float = 1.0
    ema_decay: float = 0.99
    dead_code_threshold: float = 0.0  # keep Lyra's codes when fine-tuning
    # Dotted names of the layers whose output is rounded to int8 (from the TFLite graphs).
    quantized: tuple[str, ...] = field(default_factory=tuple)
    # Of those, the layers the original runs as int8 kernels (int8 input and output); they
    # carry their input grid and weight scales, for the exact "tflite" arithmetic.
    int8_kernels: tuple[str, ...] = field(default_factory=tuple)

    @property
    def hop_length(self) -> int:
        return self.first_stride * math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


def _unit_q(quantized: set[str], prefix: str) -> frozenset[str]:
    return frozenset(s for s in QResidualUnit.STEPS if f"{prefix}.{s}" in quantized)


def _unit(c: int, d: int, cfg: LyraSoundStreamConfig, q: set[str], name: str,
          groups: int) -> QResidualUnit:
    return QResidualUnit(c, d, slope=cfg.slope, groups=groups, quantized=_unit_q(q, name),
                         int8=_unit_q(set(cfg.int8_kernels), name))


class _EncoderBlock(nn.Module):
    def __init__(self, c: int, stride: int, cfg: LyraSoundStreamConfig, q: set[str],
                 name: str) -> None:
        super().__init__()
        k = set(cfg.int8_kernels)
        self.units = nn.ModuleList(_unit(c, d, cfg, q, f"{name}.units.{i}", c // cfg.group_width)
                                   for i, d in enumerate(cfg.dilations))
        self.act = QLeakyReLU(c, cfg.slope, f"{name}.act" in q, f"{name}.act" in k)
        self.down = QCausalConv1d(c, 2 * c, 2 * stride, stride=stride,
                                  groups=c // cfg.group_width, quantized=f"{name}.down" in q,
                                  int8=f"{name}.down" in k)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        for unit in self.units:
            x = unit(x, cache)
        return self.down(self.act(x), cache)


class _DecoderBlock(nn.Module):
    def __init__(self, c: int, stride: int, cfg: LyraSoundStreamConfig, q: set[str],
                 name: str, call_frames: int = 1) -> None:
        super().__init__()
        k = set(cfg.int8_kernels)
        self.act = QLeakyReLU(c, cfg.slope, f"{name}.act" in q, f"{name}.act" in k)
        self.up = QCausalConvTranspose1d(c, c // 2, 2 * stride, stride=stride,
                                         groups=c // cfg.up_group_width,
                                         quantized=f"{name}.up" in q, int8=f"{name}.up" in k,
                                         call_frames=call_frames)
        self.units = nn.ModuleList(
            _unit(c // 2, d, cfg, q, f"{name}.units.{i}", max(1, c // 2 // cfg.group_width))
            for i, d in enumerate(cfg.dilations))

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        x = self.up(self.act(x), cache)
        for unit in self.units:
            x = unit(x, cache)
        return x


class LyraEncoder(nn.Module):
    """``(batch, 1, T)`` (T a multiple of the hop) -> ``(batch, embedding_dim, T / hop)``."""

    def __init__(self, cfg: LyraSoundStreamConfig, q: set[str]) -> None:
        super().__init__()
        c = cfg.channels
        self.first = QCausalConv1d(1, c, cfg.first_kernel, stride=cfg.first_stride,
                                   quantized="encoder.first" in q)
        blocks = []
        for i, s in enumerate(cfg.strides):
            blocks.append(_EncoderBlock(c, s, cfg, q, f"encoder.blocks.{i}"))
            c *= 2
        self.blocks = nn.ModuleList(blocks)
        k = set(cfg.int8_kernels)
        self.act = QLeakyReLU(c, cfg.slope, "encoder.act" in q, "encoder.act" in k)
        self.bottleneck = QCausalConv1d(c, cfg.embedding_dim, 3, groups=cfg.bottleneck_groups,
                                        quantized="encoder.bottleneck" in q,
                                        int8="encoder.bottleneck" in k)
        if k:  # float convs before the int8 part: the reference kernel's float32 sums
            for m in self.modules():
                if isinstance(m, QCausalConv1d) and m.int8 is None:
                    m.reference_order = True

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        x = self.first(x, cache)
        for block in self.blocks:
            x = block(x, cache)
        return self.bottleneck(self.act(x), cache)


class LyraDecoder(nn.Module):
    """``(batch, embedding_dim, frames)`` -> ``(batch, 1, frames * hop)``."""

    def __init__(self, cfg: LyraSoundStreamConfig, q: set[str]) -> None:
        super().__init__()
        c = cfg.channels * 2 ** len(cfg.strides)
        self.bottleneck = QCausalConv1d(cfg.embedding_dim, c, 3, groups=cfg.bottleneck_groups,
                                        quantized="decoder.bottleneck" in q)
        self.bottleneck.reference_order = "decoder.blocks.0.act" in q  # rounded next
        blocks, frames = [], 1  # the original decodes one latent frame a call
        for i, s in enumerate(reversed(cfg.strides)):
            blocks.append(_DecoderBlock(c, s, cfg, q, f"decoder.blocks.{i}", frames))
            c //= 2
            frames *= s
        self.blocks = nn.ModuleList(blocks)
        self.act = QLeakyReLU(c, cfg.slope, "decoder.act" in q)
        self.last = QCausalConvTranspose1d(c, 1, cfg.first_kernel, stride=cfg.first_stride,
                                           quantized="decoder.last" in q)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        x = self.bottleneck(x, cache)
        for block in self.blocks:
            x = block(x, cache)
        return self.last(self.act(x), cache)


class LyraSoundStream(PretrainedModel):
    """Lyra v2's SoundStream: encoder -> 46 x 4-bit residual VQ -> decoder (16 kHz, 20 ms).

    ``forward(audio)``: ``(batch, 1, T)`` or ``(batch, T)`` -> dict with ``audio``
    ``(batch, 1, T)``, ``codes`` ``(batch, n_q_max, frames)``, ``n_q`` ``(batch,)``,
    ``commit_loss``, ``perplexity``, ``usage`` (as
    :class:`~audiofcn.models.soundstream.SoundStream`); ``frames = ceil(T / 320)``.
    """

    model_name = "lyra_soundstream"
    config_class = LyraSoundStreamConfig

    def __init__(self, config: LyraSoundStreamConfig | None = None) -> None:
        config = config or LyraSoundStreamConfig()
        super().__init__(config)
        q = set(config.quantized)
        self.encoder = LyraEncoder(config, q)
        self.quantizer = ResidualVectorQuantizer(
            config.embedding_dim, config.num_quantizers, config.codebook_size,
            decay=config.ema_decay, dead_threshold=config.dead_code_threshold,
            quantizer_dropout=config.quantizer_dropout)
        self.decoder = LyraDecoder(config, q)
        # Arithmetic of encode/decode/streaming when not given per call: "float" (default;
        # about 2x faster), "xnnpack" (bit-exact with TFLite + XNNPACK, as Lyra runs it)
        # or "tflite" (with TFLite's reference kernels); the exact ones need the int8
        # kernels' parameters. forward() (training) always runs in float.
        self.arithmetic: str = "float"

    def identity_state(self) -> dict[str, torch.Tensor]:
        """The state that identifies the model in ``.afc`` files: everything but the
        ``*.int8.*`` grids of the exact arithmetics, which say how the same weights are
        rounded (files written before the grids were stored must still decode)."""
        return {k: v for k, v in self.state_dict().items() if ".int8." not in k}

    def inference_arithmetic(self, arithmetic: str | None = None) -> str:
        """The arithmetic ``encode``/``decode`` use: ``arithmetic``, else ``self.arithmetic``."""
        mode = arithmetic or self.arithmetic
        if mode not in ("float", "tflite", "xnnpack"):
            raise ValueError(f"arithmetic must be 'float', 'tflite' or 'xnnpack', got {mode!r}")
        if mode != "float" and not self.config.int8_kernels:
            raise ValueError("this checkpoint has no int8 kernel parameters (convert it again "
                             "with recipes/codec/convert_lyra.py) for arithmetic='tflite'")
        return mode

    def codebooks(self) -> torch.Tensor:
        """The residual VQ's codebooks stacked: ``(num_quantizers, codebook_size, dim)``."""
        return torch.stack([layer.codebook.detach() for layer in self.quantizer.layers])

    def _rvq_encode_tflite(self, z: torch.Tensor, n_q: int | None,
                           books: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, D, T)`` -> ``(B, n_q, T)`` codes as Lyra's quantizer graph computes them."""
        n_q = self.config.num_quantizers if n_q is None else n_q
        if not 1 <= n_q <= self.config.num_quantizers:
            raise ValueError(f"n_q must be in [1, {self.config.num_quantizers}], got {n_q}")
        b, d, t = z.shape
        books = self.codebooks() if books is None else books
        codes = tflite_int8.rvq_encode(z.permute(0, 2, 1).reshape(b * t, d), books, n_q)
        return codes.view(b, t, n_q).permute(0, 2, 1)

    # --- properties (same as SoundStream, so audiofcn.codec serves both) --------------------
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    def bitrate(self, n_q: int) -> float:
        return n_q * self.quantizer.bits_per_code * self.frame_rate

    def n_q_for_kbps(self, kbps: float) -> int:
        """Quantizers for ``kbps``: Lyra's 3.2, 6 and 9.2 kbps (16, 30, 46), or any multiple of
        0.2 kbps up to 9.2."""
        per_q = self.bitrate(1) / 1000.0
        n_q = int(round(kbps / per_q))
        if not (1 <= n_q <= self.config.num_quantizers and abs(n_q * per_q - kbps) < 1e-6):
            raise ValueError(f"{kbps:g} kbps is not available: this model codes "
                             f"{per_q:g} to {per_q * self.config.num_quantizers:g} kbps in "
                             f"steps of {per_q:g} (Lyra's: 3.2, 6, 9.2)")
        return n_q

    # --- offline -----------------------------------------------------------------------------
    def embed(self, audio: torch.Tensor, denoise: Any = None, cache: Cache = None
              ) -> torch.Tensor:
        """Encoder output: ``(batch, 1, T)`` -> ``(batch, 64, ceil(T / 320))`` (the input is
        zero-padded on the right to whole frames). ``denoise`` is accepted for API parity and
        must be falsy (Lyra has no denoising condition)."""
        if denoise is not None and not isinstance(denoise, torch.Tensor) and denoise:
            raise ValueError("the Lyra model has no denoising mode")
        x = as_mono_batch(audio)
        x = torch.nn.functional.pad(x, (0, -x.shape[-1] % self.hop_length))
        return self.encoder(x, cache)

    def forward(self, audio: torch.Tensor, n_q: int | torch.Tensor | None = None,
                denoise: Any = None) -> dict[str, Any]:
        """Code and decode (training: quantizer dropout when ``n_q`` is None). Shapes:
        ``(batch, 1, T)`` -> ``{"audio": (batch, 1, T), "codes": (batch, n, frames), ...}``."""
        x = as_mono_batch(audio)
        q: RVQOutput = self.quantizer(self.embed(x), n_q)
        y = self.decoder(q.quantized)[..., : x.shape[-1]]
        return {"audio": y, "codes": q.codes, "n_q": q.n_q, "commit_loss": q.commit_loss,
                "perplexity": q.perplexity, "usage": q.usage}

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_q: int | None = None,
               denoise: bool = False, arithmetic: str | None = None) -> torch.Tensor:
        """Codes: ``(batch, 1, T)`` -> ``(batch, n_q, ceil(T / 320))`` int64. ``arithmetic``:
        ``"float"`` (the training path's rounding; default, ``self.arithmetic``), ``"xnnpack"``
        (TFLite with XNNPACK, Lyra's runtime, bit for bit) or ``"tflite"`` (TFLite's reference
        kernels bit for bit)."""
        mode = self.inference_arithmetic(arithmetic)
        with int8_arithmetic(mode):
            z = self.embed(audio, denoise)
        if mode != "float":
            return self._rvq_encode_tflite(z, n_q)
        return self.quantizer.encode(z, n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None,
               arithmetic: str | None = None) -> torch.Tensor:
        """Audio from codes: ``(batch, n_q, frames)`` -> ``(batch, 1, length or frames*320)``."""
        mode = self.inference_arithmetic(arithmetic)
        with int8_arithmetic(mode):
            z = tflite_int8.rvq_decode(codes, self.codebooks()) if mode != "float" \
                else self.quantizer.decode(codes)
            y = self.decoder(z)
        return y if length is None else y[..., :length]

    # --- streaming (audiofcn.codec.streaming) --------------------------------------------------
    @torch.inference_mode()
    def encode_stream(self, chunk: torch.Tensor, state: dict[str, Any], n_q: int,
                      denoise: bool = False) -> torch.Tensor:
        """A chunk ``(batch, 1, n)`` of any length -> codes of the frames it completed,
        ``(batch, n_q, m)``. ``state`` is a dict owned by the caller, one per stream."""
        x = as_mono_batch(chunk)
        pending = state.get("pending")
        if pending is not None:
            x = torch.cat([pending, x], dim=-1)
        whole = x.shape[-1] - x.shape[-1] % self.hop_length
        state["pending"] = x[..., whole:]
        if whole == 0:
            return torch.zeros(x.shape[0], n_q, 0, dtype=torch.long, device=x.device)
        mode = self.inference_arithmetic()
        with int8_arithmetic(mode):
            z = self.embed(x[..., :whole], denoise, state.setdefault("encoder", {}))
        if mode != "float":  # the original's quantizer arithmetic, as offline
            books = state.get("books")
            if books is None:
                books = state["books"] = self.codebooks()
            return self._rvq_encode_tflite(z, n_q, books)
        rvq = state.get("rvq")
        if rvq is None:  # codebooks stacked once per stream (snapshot, like the c16 plans)
            rvq = state["rvq"] = FrozenRVQ(self.quantizer)
        b, d, m = z.shape
        codes = rvq.encode(z.permute(0, 2, 1).reshape(b * m, d), n_q)
        return codes.view(b, m, n_q).permute(0, 2, 1)

    @torch.inference_mode()
    def decode_stream(self, codes: torch.Tensor, state: dict[str, Any]) -> torch.Tensor:
        """Codes of ``m`` frames ``(batch, n_q, m)`` -> ``(batch, 1, m * 320)`` audio."""
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0)
        mode = self.inference_arithmetic()
        if mode != "float":
            books = state.get("books")
            if books is None:
                books = state["books"] = self.codebooks()
            z = tflite_int8.rvq_decode(codes, books)
        else:
            rvq = state.get("rvq")
            if rvq is None:
                rvq = state["rvq"] = FrozenRVQ(self.quantizer)
            z = rvq.decode(codes).transpose(1, 2)  # (batch, D, m)
        with int8_arithmetic(mode):
            return self.decoder(z, state.setdefault("decoder", {}))
