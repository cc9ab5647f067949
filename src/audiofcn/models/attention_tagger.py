"""CNN + self-attention music tagger (Won, Chun & Serra, 2019).

A shallow 2-D CNN turns the log-mel spectrogram into a sequence of frame embeddings (frequency
folded into channels), a learned [CLS] token is prepended, a Transformer encoder (2 layers,
8 heads in the paper) mixes the sequence, and the [CLS] output gives the tags.
:meth:`SelfAttentionTagger.attention_maps` returns what the [CLS] token attends to over time,
the interpretability device of the paper.

Unlike a known peer implementation, the [CLS] token is a ``(1, 1, d)`` parameter expanded to
the batch at run time, so any batch size works; positions use sinusoidal encodings computed for
the actual sequence length, so any input length works.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.conv import ConvBNAct2d


def won_frontend() -> LogMelConfig:
    """16 kHz, n_fft 512, hop 256, 128 mel bins, dB."""
    return LogMelConfig(mel=MelConfig(16000, STFTConfig(512, 256), 128))


@dataclass
class SelfAttentionTaggerConfig:
    labels: tuple[str, ...] = tuple(f"tag{i}" for i in range(50))
    multi_label: bool = True
    frontend: LogMelConfig = field(default_factory=won_frontend)
    input_length: int = 240_000  # 15 s at 16 kHz
    conv_channels: tuple[int, ...] = (128, 128, 128, 128, 128, 128, 128)
    # (freq, time) pools; time is pooled 2× twice so a token covers 64 ms at hop 16 ms.
    conv_pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1), (2, 1), (2, 1), (2, 1),
                                               (2, 1))
    d_model: int = 256
    n_layers: int = 2
    n_heads: int = 8
    ff_dim: int = 1024
    dropout: float = 0.1
    head_dropout: float = 0.5

    def __post_init__(self) -> None:
        # JSON round trips turn nested tuples into lists; keep the config comparable.
        self.labels = tuple(self.labels)
        self.conv_channels = tuple(self.conv_channels)
        self.conv_pools = tuple((int(f), int(t)) for f, t in self.conv_pools)

    @property
    def sample_rate(self) -> int:
        return self.frontend.mel.sample_rate


def sinusoidal_positions(n: int, dim: int, device: torch.device) -> torch.Tensor:
    """``(n, dim)`` sine/cosine position encodings (Vaswani et al.)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) *
                    (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return pe


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer (BERT style) that can return its attention weights.

    Shapes: ``(batch, tokens, d_model)`` -> same, and optionally
    ``(batch, heads, tokens, tokens)`` attention probabilities.
    """

    def __init__(self, d_model: int, n_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, d_model))
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, need_weights: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, w = self.attn(x, x, x, need_weights=need_weights, average_attn_weights=False)
        x = self.norm1(x + self.drop(a))
        x = self.norm2(x + self.drop(self.ff(x)))
        return x, w


class SelfAttentionTagger(PretrainedModel):
    """Shallow CNN front end + Transformer encoder with a [CLS] token."""

    model_name = "self_attention_tagger"
    config_class = SelfAttentionTaggerConfig

    def __init__(self, config: SelfAttentionTaggerConfig | None = None) -> None:
        config = config or SelfAttentionTaggerConfig()
        super().__init__(config)
        c = config
        if len(c.conv_channels) != len(c.conv_pools):
            raise ValueError("conv_channels and conv_pools need one entry per layer")
        self.frontend = LogMelFrontend(c.frontend)
        self.input_norm = nn.BatchNorm2d(1)
        layers, cin, n_freq = [], 1, c.frontend.mel.n_mels
        for cout, pool in zip(c.conv_channels, c.conv_pools, strict=True):
            layers.append(ConvBNAct2d(cin, cout, 3, pool=tuple(pool)))
            cin, n_freq = cout, n_freq // pool[0]
        if n_freq < 1:
            raise ValueError("the frequency pools reduce the mel bins below one")
        self.cnn = nn.Sequential(*layers)
        self.time_pool = math.prod(p[1] for p in c.conv_pools)
        self.project = nn.Linear(cin * n_freq, c.d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        nn.init.normal_(self.cls, std=0.02)
        self.layers = nn.ModuleList(EncoderLayer(c.d_model, c.n_heads, c.ff_dim, c.dropout)
                                    for _ in range(c.n_layers))
        self.dropout = nn.Dropout(c.head_dropout)
        self.classifier = nn.Linear(c.d_model, len(c.labels))

    @property
    def seconds_per_token(self) -> float:
        return self.time_pool * self.config.frontend.mel.stft.hop_length / self.config.sample_rate

    def tokens(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, 1 + frames', d_model)`` with [CLS] first."""
        spec = self.input_norm(self.frontend(audio).unsqueeze(1))
        if spec.shape[-1] < self.time_pool:
            spec = nn.functional.pad(spec, (0, self.time_pool - spec.shape[-1]))
        h = self.cnn(spec)  # (B, C, F', T')
        h = h.flatten(1, 2).transpose(1, 2)  # (B, T', C·F')
        h = self.project(h)
        h = h + sinusoidal_positions(h.shape[1], h.shape[2], h.device)
        return torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)

    def encode(self, audio: torch.Tensor, need_weights: bool = False
               ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encoder output ``(batch, 1 + frames', d_model)`` and per-layer attention
        ``(batch, heads, tokens, tokens)`` (empty unless ``need_weights``)."""
        x = self.tokens(audio)
        maps = []
        for layer in self.layers:
            x, w = layer(x, need_weights=need_weights)
            if w is not None:
                maps.append(w)
        return x, maps

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, d_model)``: the [CLS] output."""
        return self.encode(audio)[0][:, 0]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Tag logits.

        Args:
            audio: ``(batch, time)`` mono audio at ``config.sample_rate``; any batch size and
                length.

        Returns:
            ``(batch, n_labels)`` logits.
        """
        return self.classifier(self.dropout(self.embed(audio)))

    @torch.no_grad()
    def attention_maps(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the [CLS] token attends to over time, per layer and head.

        Args:
            audio: ``(batch, time)``.

        Returns:
            ``(maps, times)``: ``maps`` of shape ``(batch, n_layers, n_heads, frames')`` (each
            row sums to at most 1: the [CLS]-to-[CLS] weight is left out), and ``times``
            ``(frames',)``, the start time in seconds of each token.
        """
        _, maps = self.encode(audio, need_weights=True)
        att = torch.stack([m[:, :, 0, 1:] for m in maps], dim=1)
        times = torch.arange(att.shape[-1], dtype=torch.float32) * self.seconds_per_token
        return att, times
