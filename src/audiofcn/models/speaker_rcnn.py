"""Recurrent convolutional speaker-embedding network (after Cyrta, Trzcinski & Stokowiec 2017).

Log-mel spectrogram -> conv blocks (frequency and time pooling) -> bidirectional-free GRU over the
pooled frames -> mean + standard-deviation pooling over time -> linear -> L2-normalised embedding.
The paper gives no layer sizes; these are small so that diarization runs well above real time
on one CPU thread (``docs/diarization.md``).

Level: features are dB log-mel with the mean over the whole input subtracted (one number per
example), so a gain change cancels; training adds random offsets so that the mean taken over a
1.5-s crop or over a long chunk (see :meth:`SpeakerRCNN.embed_windows`) gives the same embedding.

Long inputs: the conv stack is run once over a whole chunk and the GRU + pooling per window on
its output (:meth:`SpeakerRCNN.embed_windows`), so overlapping windows share the conv work.
Window hops must be a multiple of ``frame_stride`` input frames (the time pooling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.conv import ConvBNAct2d


def _default_frontend() -> LogMelConfig:
    # 32 ms windows every 12.5 ms: 0.25 s = 20 frames = 5 frames after 4x time pooling.
    return LogMelConfig(mel=MelConfig(sample_rate=16000, stft=STFTConfig(512, 200), n_mels=40,
                                      f_min=20.0, f_max=7600.0),
                        amin=1e-8, top_db=None)


@dataclass
class SpeakerRCNNConfig:
    sample_rate: int = 16000
    # the window length the pipeline embeds (also what a speaker catalog cuts files into)
    segment_seconds: float = 1.5
    frontend: LogMelConfig = field(default_factory=_default_frontend)
    channels: tuple[int, ...] = (16, 32, 64)
    pools: tuple[tuple[int, int], ...] = ((2, 1), (2, 2), (2, 2))  # (freq, time)
    gru_hidden: int = 128
    embedding_dim: int = 128
    # > 0 adds a speaker-classification head (additive-margin softmax training); the shipped
    # model has none.
    num_classes: int = 0

    @property
    def frame_stride(self) -> int:
        """Input frames per output step of the conv stack."""
        return math.prod(p[1] for p in self.pools)

    @property
    def hop_length(self) -> int:
        return self.frontend.mel.stft.hop_length


class SpeakerRCNN(PretrainedModel):
    """Waveform -> L2-normalised speaker embedding."""

    model_name = "speaker_rcnn"
    config_class = SpeakerRCNNConfig

    def __init__(self, config: SpeakerRCNNConfig | None = None) -> None:
        config = config or SpeakerRCNNConfig()
        super().__init__(config)
        if config.frontend.mel.sample_rate != config.sample_rate:
            raise ValueError("frontend sample rate must equal the model sample rate")
        if len(config.pools) != len(config.channels):
            raise ValueError("need one pool per conv block")
        self.frontend = LogMelFrontend(config.frontend)
        blocks, c_in, n_freq = [], 1, config.frontend.mel.n_mels
        for c_out, pool in zip(config.channels, config.pools, strict=True):
            blocks.append(ConvBNAct2d(c_in, c_out, 3, pool=tuple(pool)))
            c_in, n_freq = c_out, n_freq // pool[0]
        self.blocks = nn.Sequential(*blocks)
        self.gru = nn.GRU(c_in * n_freq, config.gru_hidden, batch_first=True)
        self.proj = nn.Linear(2 * config.gru_hidden, config.embedding_dim)
        self.classifier = nn.Linear(config.embedding_dim, config.num_classes, bias=False) \
            if config.num_classes > 0 else None

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> level-normalised log-mel ``(batch, 1, n_mels, frames)``."""
        x = self.frontend(audio)
        return (x - x.mean(dim=(-2, -1), keepdim=True)).div(20.0).unsqueeze(1)

    def conv_frames(self, feats: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, n_mels, frames)`` -> ``(batch, steps, gru_input)``, steps = frames //
        frame_stride."""
        h = self.blocks(feats)  # (B, C, F', T')
        return h.flatten(1, 2).transpose(1, 2)

    def pool(self, seq: torch.Tensor) -> torch.Tensor:
        """``(batch, steps, gru_input)`` -> unit ``(batch, embedding_dim)``."""
        out, _ = self.gru(seq)  # (B, S, H)
        stats = torch.cat([out.mean(1), out.std(1, unbiased=False)], dim=-1)
        return F.normalize(self.proj(stats), dim=-1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Embed waveform crops.

        Args:
            audio: ``(batch, time)`` or ``(batch, 1, time)`` mono waveform at
                ``config.sample_rate``, at least ``2 * frame_stride`` frames long.

        Returns:
            ``(batch, embedding_dim)`` embeddings with unit L2 norm.
        """
        if audio.dim() == 3:
            audio = audio.squeeze(1)
        if audio.dim() != 2:
            raise ValueError(f"expected (batch, time) audio, got shape {tuple(audio.shape)}")
        return self.pool(self.conv_frames(self.features(audio)))

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Cosine similarities ``(batch, num_classes)`` to the class centres (AM-softmax)."""
        if self.classifier is None:
            raise ValueError("this model has no classification head (num_classes=0)")
        return embeddings @ F.normalize(self.classifier.weight, dim=-1).T

    @torch.no_grad()
    def embed_windows(self, audio: torch.Tensor, window_steps: int, hop_steps: int,
                      batch_size: int = 256) -> torch.Tensor:
        """Embeddings of sliding windows over one chunk, sharing the conv work.

        Args:
            audio: ``(time,)`` waveform chunk.
            window_steps, hop_steps: window length and hop in conv output steps
                (``frame_stride * hop_length`` samples each).

        Returns:
            ``(n_windows, embedding_dim)``; window ``i`` starts at step ``i * hop_steps``.
            Empty when the chunk is shorter than one window.
        """
        was_training = self.training
        self.eval()
        try:
            seq = self.conv_frames(self.features(audio[None]))[0]  # (S, D)
            n = 0 if seq.shape[0] < window_steps else 1 + (seq.shape[0] - window_steps) // hop_steps
            if n == 0:
                return torch.empty(0, self.config.embedding_dim)
            wins = seq.unfold(0, window_steps, hop_steps)[:n].transpose(1, 2)  # (N, W, D)
            return torch.cat([self.pool(wins[i:i + batch_size].contiguous())
                              for i in range(0, n, batch_size)])
        finally:
            self.train(was_training)

    @torch.no_grad()
    def embed_scales(self, audio: torch.Tensor, window_steps: int, hop_steps: int,
                     scale_steps: tuple[int, ...], batch_size: int = 256) -> torch.Tensor:
        """Multi-scale embeddings (NeMo-style) of the sliding windows of one chunk.

        The conv stack runs once; for every window of ``window_steps`` (every ``hop_steps``),
        one embedding per scale in ``scale_steps``, each from a window of that many steps centred
        on the same centre (shifted inside the chunk where it would stick out, and cut to the
        chunk when the chunk is shorter than the scale).

        Returns:
            ``(n_windows, len(scale_steps), embedding_dim)``, unit vectors; ``n_windows`` as in
            :meth:`embed_windows`.
        """
        if not scale_steps or min(scale_steps) < 2:
            raise ValueError(f"need scales of at least 2 steps, got {scale_steps}")
        was_training = self.training
        self.eval()
        try:
            seq = self.conv_frames(self.features(audio[None]))[0]  # (S, D)
            total = seq.shape[0]
            n = 0 if total < window_steps else 1 + (total - window_steps) // hop_steps
            out = torch.empty(n, len(scale_steps), self.config.embedding_dim)
            base = torch.arange(n) * hop_steps
            for j, steps in enumerate(scale_steps):
                steps = min(steps, total)
                start = (base + (window_steps - steps) // 2).clamp(0, total - steps)
                idx = start[:, None] + torch.arange(steps)[None]  # (N, L)
                for i in range(0, n, batch_size):
                    out[i:i + batch_size, j] = self.pool(seq[idx[i:i + batch_size]])
            return out
        finally:
            self.train(was_training)

    def without_classifier(self) -> SpeakerRCNN:
        """A copy without the training head (what is shipped)."""
        import dataclasses

        model = SpeakerRCNN(dataclasses.replace(self.config, num_classes=0))
        state = {k: v for k, v in self.state_dict().items() if not k.startswith("classifier.")}
        model.load_state_dict(state)
        return model.eval()
