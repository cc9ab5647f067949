"""Cut audio into overlapping fixed-length segments and embed them.

The same cutting serves the catalog (indexing whole tracks) and queries (a clip or a time range
of a file), so a query segment lines up with catalog segments to within half a hop.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from audiofcn.io.audio import load_audio

EmbedFn = Callable[[torch.Tensor], np.ndarray]


@dataclass
class Segments:
    """``starts``/``ends`` in seconds ``(n,)`` and unit-norm ``embeddings`` ``(n, dim)``."""

    starts: np.ndarray
    ends: np.ndarray
    embeddings: np.ndarray


def segment_starts(n_samples: int, seg: int, hop: int) -> list[int]:
    """Start samples of segments of ``seg`` samples every ``hop``; the last one is aligned to
    the end so the tail is covered; a clip shorter than one segment gives one (padded) segment."""
    if n_samples <= seg:
        return [0]
    starts = list(range(0, n_samples - seg + 1, hop))
    if starts[-1] + seg < n_samples and n_samples - (starts[-1] + seg) > hop // 4:
        starts.append(n_samples - seg)
    return starts


class SegmentEmbedder:
    """Embeds ``(time,)`` mono audio as overlapping segments with ``embed_fn``.

    Args:
        embed_fn: ``(n, segment_samples)`` float waveforms -> ``(n, dim)`` float32 unit
            vectors (e.g. an :class:`~audiofcn.models.embedding.EmbeddingNet`).
        sample_rate: rate ``embed_fn`` expects; audio is resampled to it.
        segment_seconds, hop_seconds: segment length and step.
    """

    def __init__(self, embed_fn: EmbedFn, sample_rate: int, segment_seconds: float,
                 hop_seconds: float, batch_size: int = 32) -> None:
        if hop_seconds <= 0 or segment_seconds <= 0:
            raise ValueError("segment and hop lengths must be positive")
        self.embed_fn = embed_fn
        self.sample_rate = sample_rate
        self.segment_seconds = segment_seconds
        self.hop_seconds = hop_seconds
        self.batch_size = batch_size

    @classmethod
    def from_model(cls, model: torch.nn.Module, hop_seconds: float | None = None,
                   batch_size: int = 32) -> SegmentEmbedder:
        cfg = model.config  # an EmbeddingNet (or any model with the same config fields)
        model.eval()

        @torch.inference_mode()
        def embed(x: torch.Tensor) -> np.ndarray:
            return model(x).float().numpy()

        return cls(embed, cfg.sample_rate, cfg.segment_seconds,
                   hop_seconds or cfg.segment_seconds / 2, batch_size)

    def embed_audio(self, audio: torch.Tensor) -> Segments:
        """``(time,)`` or ``(1, time)`` audio at ``sample_rate`` -> :class:`Segments`."""
        audio = audio.reshape(-1).float()
        seg = int(round(self.segment_seconds * self.sample_rate))
        hop = max(1, int(round(self.hop_seconds * self.sample_rate)))
        starts = segment_starts(audio.shape[0], seg, hop)
        if audio.shape[0] < seg:
            audio = F.pad(audio, (0, seg - audio.shape[0]))
        chunks = torch.stack([audio[s:s + seg] for s in starts])
        emb = [self.embed_fn(chunks[i:i + self.batch_size])
               for i in range(0, len(starts), self.batch_size)]
        total = audio.shape[0]
        st = np.asarray(starts, dtype=np.float64) / self.sample_rate
        en = np.minimum(st + self.segment_seconds, total / self.sample_rate)
        return Segments(st, en, np.ascontiguousarray(np.concatenate(emb), dtype=np.float32))

    def embed_file(self, path: str | os.PathLike[str], start: float | None = None,
                   end: float | None = None) -> tuple[Segments, float]:
        """Embed a file or its ``[start, end)`` seconds; returns segments (times relative to the
        file) and the duration read in seconds."""
        offset = float(start or 0.0)
        duration = None if end is None else max(0.0, float(end) - offset)
        audio, _ = load_audio(path, sr=self.sample_rate, offset=offset, duration=duration)
        segs = self.embed_audio(audio)
        segs.starts += offset
        segs.ends += offset
        return segs, audio.shape[-1] / self.sample_rate
