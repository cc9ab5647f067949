"""SoundStream (Zeghidour et al. 2021): causal convolutional codec with residual VQ.

Encoder: causal conv (C) -> 4 blocks of [3 residual units (dilations 1, 3, 9), ELU, strided conv
(kernel 2*stride) doubling the channels] -> ELU -> FiLM (denoise on/off) -> conv to D.
Decoder mirrors it with causal transposed convs and ends in a kernel-7 conv to one channel.
Everything is causal, so the model streams with a latency of one frame (``hop_length`` samples).

Bitrate: ``n_q * log2(codebook_size) * frame_rate``. 16 kHz preset: strides (2, 4, 5, 8) ->
320 samples per frame, 50 frames/s, 500 bit/s per quantizer: 3/6/12 kbps = 6/12/24 quantizers.
24 kHz preset: the paper's 75 frames/s, 750 bit/s per quantizer: 6 kbps = 8 quantizers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend.checks import as_audio, as_mono_batch
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.causal import (
    ELU,
    CausalConv1d,
    CausalConvTranspose1d,
    CausalResidualUnit,
    StreamingSequential,
    StreamState,
)
from audiofcn.nn.film import FiLM
from audiofcn.nn.quantizer import FrozenRVQ, ResidualVectorQuantizer, RVQOutput
from audiofcn.nn.stream_plan import StreamPlan


@dataclass
class SoundStreamConfig:
    sample_rate: int = 16000
    channels: int = 16  # C: 16 or 32 in the paper
    strides: tuple[int, ...] = (2, 4, 5, 8)
    embedding_dim: int = 64  # D
    num_quantizers: int = 24  # N_q: the highest bitrate is N_q * bits * frame_rate
    codebook_size: int = 1024
    quantizer_dropout: float = 1.0  # fraction of examples with n_q ~ U[1, N_q] (paper: all)
    ema_decay: float = 0.99
    dead_code_threshold: float = 2.0  # usage EMA below which a code is replaced (paper: 2)
    num_conditions: int = 2  # FiLM: 0 = plain coding, 1 = coding with denoising

    @property
    def hop_length(self) -> int:
        return math.prod(self.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


PRESETS: dict[str, dict[str, Any]] = {
    "16k-c16": {"sample_rate": 16000, "channels": 16, "strides": (2, 4, 5, 8),
                "num_quantizers": 24},
    "16k-c32": {"sample_rate": 16000, "channels": 32, "strides": (2, 4, 5, 8),
                "num_quantizers": 24},
    "24k-c16": {"sample_rate": 24000, "channels": 16, "strides": (2, 4, 5, 8),
                "num_quantizers": 24, "embedding_dim": 128},
    "24k-c32": {"sample_rate": 24000, "channels": 32, "strides": (2, 4, 5, 8),
                "num_quantizers": 24, "embedding_dim": 128},
}


def soundstream_preset(name: str, **overrides: Any) -> SoundStreamConfig:
    """A config by preset name (``16k-c16``, ``16k-c32``, ``24k-c16``, ``24k-c32``)."""
    if name not in PRESETS:
        raise KeyError(f"unknown SoundStream preset {name!r}; known: {sorted(PRESETS)}")
    return SoundStreamConfig(**{**PRESETS[name], **overrides})


def _encoder_block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [CausalResidualUnit(c_in, d) for d in (1, 3, 9)] + \
        [ELU(), CausalConv1d(c_in, c_out, 2 * stride, stride=stride)]


def _decoder_block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
    return [ELU(), CausalConvTranspose1d(c_in, c_out, 2 * stride, stride=stride)] + \
        [CausalResidualUnit(c_out, d) for d in (1, 3, 9)]


class SoundStream(PretrainedModel):
    """Causal encoder -> residual VQ -> causal decoder.

    ``forward(audio)``: ``(batch, 1, T)`` or ``(batch, T)`` -> dict with ``audio``
    ``(batch, 1, T)``, ``codes`` ``(batch, n_q_max, frames)``, ``n_q`` ``(batch,)``,
    ``commit_loss``, ``perplexity`` and ``usage`` per codebook; ``frames = ceil(T / hop)``.
    """

    model_name = "soundstream"
    config_class = SoundStreamConfig

    def __init__(self, config: SoundStreamConfig | None = None) -> None:
        config = config or SoundStreamConfig()
        super().__init__(config)
        c = config.channels
        enc: list[nn.Module] = [CausalConv1d(1, c, 7)]
        ch = c
        for s in config.strides:
            enc += _encoder_block(ch, 2 * ch, s)
            ch *= 2
        enc.append(ELU())
        self.encoder = StreamingSequential(*enc)
        self.film = FiLM(ch, config.num_conditions)
        self.to_embedding = CausalConv1d(ch, config.embedding_dim, 3)
        self.quantizer = ResidualVectorQuantizer(
            config.embedding_dim, config.num_quantizers, config.codebook_size,
            decay=config.ema_decay, dead_threshold=config.dead_code_threshold,
            quantizer_dropout=config.quantizer_dropout)
        dec: list[nn.Module] = [CausalConv1d(config.embedding_dim, ch, 7)]
        for s in reversed(config.strides):
            dec += _decoder_block(ch, ch // 2, s)
            ch //= 2
        dec += [ELU(), CausalConv1d(ch, 1, 7)]
        self.decoder = StreamingSequential(*dec)

    # --- properties --------------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    def bitrate(self, n_q: int) -> float:
        """Payload bits per second with ``n_q`` quantizers."""
        return n_q * self.quantizer.bits_per_code * self.frame_rate

    def n_q_for_kbps(self, kbps: float) -> int:
        """Quantizers giving exactly (or at most) ``kbps``; raises if out of range."""
        per_q = self.bitrate(1) / 1000.0
        n_q = int(math.floor(kbps / per_q + 1e-9))
        if not 1 <= n_q <= self.config.num_quantizers:
            raise ValueError(f"{kbps} kbps is out of range: this model codes "
                             f"{per_q:g} to {per_q * self.config.num_quantizers:g} kbps in "
                             f"steps of {per_q:g}")
        return n_q

    # --- offline -----------------------------------------------------------------------------
    def _cond(self, denoise: bool | torch.Tensor | None, batch: int,
              device: torch.device) -> torch.Tensor:
        if isinstance(denoise, torch.Tensor):
            return denoise.to(device=device, dtype=torch.long).reshape(batch)
        return torch.full((batch,), int(bool(denoise)), dtype=torch.long, device=device)

    def embed(self, audio: torch.Tensor, denoise: bool | torch.Tensor | None = None
              ) -> torch.Tensor:
        """Encoder output before quantization: ``(batch, 1, T)`` -> ``(batch, D, frames)``;
        the input is zero-padded on the right to whole frames."""
        # Whole-signal entry (forward/encode; not the per-chunk stream): full input checks.
        x = as_mono_batch(as_audio(audio, expect="(batch, 1, T) or (batch, T)"))
        pad = -x.shape[-1] % self.hop_length
        x = F.pad(x, (0, pad))
        h = self.film(self.encoder(x), self._cond(denoise, x.shape[0], x.device))
        return self.to_embedding(h)

    def forward(self, audio: torch.Tensor, n_q: int | torch.Tensor | None = None,
                denoise: bool | torch.Tensor | None = None) -> dict[str, Any]:
        """Code and decode. ``n_q``: int, ``(batch,)`` tensor, or None (training: sampled
        per example by quantizer dropout; eval: all). ``denoise``: bool or ``(batch,)`` flags.

        Shapes: ``(batch, 1, T)`` -> ``{"audio": (batch, 1, T), "codes": (batch, n, frames),
        ...}``."""
        x = as_mono_batch(audio)
        z = self.embed(x, denoise)
        q: RVQOutput = self.quantizer(z, n_q)
        y = self.decoder(q.quantized)[..., : x.shape[-1]]
        return {"audio": y, "codes": q.codes, "n_q": q.n_q, "commit_loss": q.commit_loss,
                "perplexity": q.perplexity, "usage": q.usage}

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, n_q: int | None = None,
               denoise: bool = False) -> torch.Tensor:
        """Codes: ``(batch, 1, T)`` -> ``(batch, n_q, ceil(T / hop))`` int64."""
        return self.quantizer.encode(self.embed(audio, denoise), n_q)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, length: int | None = None) -> torch.Tensor:
        """Audio from codes: ``(batch, n_q, frames)`` -> ``(batch, 1, length or frames*hop)``."""
        y = self.decoder(self.quantizer.decode(codes))
        return y if length is None else y[..., :length]

    # --- streaming (used by audiofcn.codec.streaming) ----------------------------------------
    # The per-chunk path runs compiled plans (audiofcn.nn.stream_plan: time-major, one addmm per
    # conv, weights snapshotted when the stream starts) kept in the caller's ``state`` dict;
    # ``state["fused"]`` (default None: when numba is there) picks the fused-kernel plans.
    def _encoder_plans(self, state: StreamState, denoise: bool) -> dict[str, Any]:
        plans = state.get("encoder")
        if plans is None:
            fused = state.get("fused")
            enc, emb = StreamPlan(self.encoder, fused), StreamPlan([self.to_embedding], fused)
            cond = self._cond(denoise, 1, self.quantizer.layers[0].codebook.device)
            gamma, beta = self.film.proj(self.film.embed(cond)).chunk(2, dim=-1)
            plans = state["encoder"] = {
                "encoder": enc, "encoder_state": enc.new_state(), "embedding": emb,
                "embedding_state": emb.new_state(), "film": (1.0 + gamma, beta),
                "denoise": denoise, "rvq": FrozenRVQ(self.quantizer, fused)}
        elif plans["denoise"] != denoise:
            raise ValueError("denoise cannot change within a stream")
        return plans

    @torch.inference_mode()
    def encode_stream(self, chunk: torch.Tensor, state: StreamState, n_q: int,
                      denoise: bool = False) -> torch.Tensor:
        """One chunk ``(batch, 1, n)`` of any length -> the codes of the frames it completed,
        ``(batch, n_q, m)``. ``state`` is a dict owned by the caller, one per stream."""
        x = as_mono_batch(chunk)
        p = self._encoder_plans(state, denoise)
        h = p["encoder"].step(x.transpose(1, 2), p["encoder_state"])  # (batch, m, C)
        if h.shape[1] == 0:
            return torch.zeros(x.shape[0], n_q, 0, dtype=torch.long, device=x.device)
        scale, shift = p["film"]
        z = p["embedding"].step(h * scale + shift, p["embedding_state"])  # (batch, m, D)
        b, m, d = z.shape
        return p["rvq"].encode(z.reshape(b * m, d), n_q).view(b, m, n_q).permute(0, 2, 1)

    @torch.inference_mode()
    def decode_stream(self, codes: torch.Tensor, state: StreamState) -> torch.Tensor:
        """Codes of ``m`` frames ``(batch, n_q, m)`` -> ``(batch, 1, m * hop)`` audio."""
        if codes.shape[-1] == 0:
            return torch.zeros(codes.shape[0], 1, 0, device=self.quantizer.layers[0]
                               .codebook.device)
        p = state.get("decoder")
        if p is None:
            dec = StreamPlan(self.decoder, state.get("fused"))
            p = state["decoder"] = {"decoder": dec, "decoder_state": dec.new_state(),
                                    "rvq": FrozenRVQ(self.quantizer)}
        y = p["decoder"].step(p["rvq"].decode(codes), p["decoder_state"])  # (batch, T, 1)
        return y.transpose(1, 2)
