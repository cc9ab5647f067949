"""Segment embedding network for music similarity search (Thomé et al. 2022).

A small VGG-style CNN over a log-mel segment, pooled over frequency and time (mean + max) and
projected to an L2-normalised embedding, so that inner product = cosine similarity and a FAISS
``IndexFlatIP`` ranks by it. Trained self-supervised with a triplet loss
(:mod:`audiofcn.nn.triplet`) on pairs of musically transformed views of one segment
(:mod:`audiofcn.data.transforms`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.conv import ConvBNAct2d


def _default_frontend() -> LogMelConfig:
    return LogMelConfig(mel=MelConfig(sample_rate=16000, stft=STFTConfig(1024, 256), n_mels=64))


@dataclass
class EmbeddingConfig:
    sample_rate: int = 16000
    segment_seconds: float = 3.0  # the length the net is trained on; the index cuts this
    frontend: LogMelConfig = field(default_factory=_default_frontend)
    channels: tuple[int, ...] = (32, 64, 128, 128)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 2), (2, 2))  # (freq, time)
    embedding_dim: int = 128
    dropout: float = 0.1

    @property
    def segment_samples(self) -> int:
        return int(round(self.segment_seconds * self.sample_rate))


class EmbeddingNet(PretrainedModel):
    """Waveform segments -> L2-normalised embeddings.

    The log-mel patch is standardised per example (zero mean, unit variance over the whole
    patch): a gain change is a constant dB offset, so the embedding is gain-invariant by
    construction and the network spends no capacity on loudness.
    """

    model_name = "embedding"
    config_class = EmbeddingConfig

    def __init__(self, config: EmbeddingConfig | None = None) -> None:
        config = config or EmbeddingConfig()
        super().__init__(config)
        if config.frontend.mel.sample_rate != config.sample_rate:
            raise ValueError("frontend sample rate must equal the model sample rate")
        if len(config.pools) != len(config.channels):
            raise ValueError("need one pool per conv block")
        self.frontend = LogMelFrontend(config.frontend)
        blocks = []
        c_in = 1
        for c_out, pool in zip(config.channels, config.pools, strict=True):
            blocks.append(ConvBNAct2d(c_in, c_out, 3, pool=tuple(pool)))
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(config.dropout)
        self.proj = nn.Linear(2 * c_in, config.embedding_dim)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` waveform -> standardised log-mel ``(batch, 1, n_mels, frames)``."""
        x = self.frontend(audio)
        mean = x.mean(dim=(-2, -1), keepdim=True)
        std = x.std(dim=(-2, -1), keepdim=True).clamp_min(1e-3)
        return ((x - mean) / std).unsqueeze(1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Embed waveform segments.

        Args:
            audio: ``(batch, time)`` or ``(batch, 1, time)`` mono waveform at
                ``config.sample_rate``; any length of at least a few frames (training and
                indexing use ``config.segment_samples``).

        Returns:
            ``(batch, embedding_dim)`` embeddings with unit L2 norm.
        """
        if audio.dim() == 3:
            audio = audio.squeeze(1)
        if audio.dim() != 2:
            raise ValueError(f"expected (batch, time) audio, got shape {tuple(audio.shape)}")
        h = self.blocks(self.features(audio))  # (B, C, F', T')
        pooled = torch.cat([h.mean(dim=(-2, -1)), h.amax(dim=(-2, -1))], dim=-1)  # (B, 2C)
        return F.normalize(self.proj(self.dropout(pooled)), dim=-1)

    @torch.no_grad()
    def embed(self, audio: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Embed many segments ``(n, time)`` in eval mode and batches; returns ``(n, dim)``."""
        was_training = self.training
        self.eval()
        try:
            out = [self(audio[i:i + batch_size]) for i in range(0, audio.shape[0], batch_size)]
        finally:
            self.train(was_training)
        if not out:
            return torch.empty(0, self.config.embedding_dim)
        return torch.cat(out)
