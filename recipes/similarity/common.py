"""Shared pieces of the similarity recipe: paired-view dataset and the triplet task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from audiofcn.data.transforms import AugmentConfig, MusicAugment
from audiofcn.io import load_audio, read_manifest
from audiofcn.nn.triplet import triplet_loss


def load_split(root: Path, split: str, sr: int, limit: int | None = None
               ) -> tuple[list[torch.Tensor], list[Any]]:
    """Waveforms ``(time,)`` and records of one split of a rendered catalog."""
    recs = read_manifest(root / "manifest.jsonl", split=split)[:limit]
    return [load_audio(r.resolve(root), sr=sr)[0][0] for r in recs], recs


class PairedViews(Dataset):
    """Item ``i`` = two views of one segment of track ``i % n_tracks``: the same passage cut
    with independent offsets of up to ``jitter`` seconds (queries never line up with the
    catalog's segment grid) and independently transformed. View A stays clean with
    probability ``p_clean_anchor`` (catalog audio is clean; queries are not).

    ``repeats[t]`` (default 1 each) = how many items per pass draw from track ``t``, so long
    real recordings are sampled in proportion to their length; items of one track share its
    label, and the triplet loss treats two passages of one recording as positives.

    Returns ``(views (2, segment_samples), label)`` with label = track index.
    """

    def __init__(self, waves: list[torch.Tensor], segment_samples: int, sample_rate: int,
                 items: int, augment: AugmentConfig | None = None, jitter: float = 0.75,
                 p_clean_anchor: float = 0.5, seed: int = 0, deterministic: bool = False,
                 repeats: list[int] | None = None):
        if not waves:
            raise ValueError("no training audio")
        self.waves = waves
        reps = repeats or [1] * len(waves)
        self.track_of = [t for t, r in enumerate(reps) for _ in range(max(1, r))]
        self.seg = segment_samples
        self.jit = int(jitter * sample_rate)
        self.items = items
        self.augment = MusicAugment(augment or AugmentConfig(sample_rate=sample_rate))
        self.p_clean = p_clean_anchor
        self.seed = seed
        self.deterministic = deterministic
        self.calls = 0

    def __len__(self) -> int:
        return self.items

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        track = self.track_of[i % len(self.track_of)]
        # Validation: same views every epoch; training: fresh randomness on every call. In a
        # DataLoader worker the call counter restarts every epoch, so the worker's seed (new
        # each epoch and per worker) is mixed in too.
        self.calls += 1
        info = torch.utils.data.get_worker_info()
        wseed = info.seed % 1_000_000_007 if info is not None else 0
        seed = self.seed * 1_000_003 + i if self.deterministic else \
            self.seed * 1_000_003 + self.calls * 7919 + i + wseed * 104_729
        g = torch.Generator().manual_seed(seed)
        w = self.waves[track]
        span = self.seg + 2 * self.jit
        if w.shape[0] < span:
            w = torch.nn.functional.pad(w, (0, span - w.shape[0]))
        base = int(torch.randint(0, w.shape[0] - span + 1, (1,), generator=g))
        offs = torch.randint(0, 2 * self.jit + 1, (2,), generator=g)
        views = torch.stack([w[base + int(o): base + int(o) + self.seg] for o in offs])
        # The "other track" mixed in softly is a random different track.
        other_idx = (track + 1 + int(torch.randint(0, max(1, len(self.waves) - 1), (1,),
                                                   generator=g))) % len(self.waves)
        ow = self.waves[other_idx]
        o0 = int(torch.randint(0, max(1, ow.shape[0] - self.seg), (1,), generator=g))
        other = torch.nn.functional.pad(ow[o0:o0 + self.seg], (0, 0))
        other = torch.nn.functional.pad(other, (0, self.seg - other.shape[0]))
        if float(torch.rand(1, generator=g)) < self.p_clean:  # transform only view B
            return torch.stack([views[0], self.augment(views[1:], g, others=other[None])[0]]
                               ), track
        return self.augment(views, g, others=other.expand(2, -1)), track


class TripletTask:
    """Embeds both views of every item and applies the mined triplet loss with labels = track;
    also logs in-batch top-1 retrieval accuracy of the positive (``top1``)."""

    def __init__(self, margin: float = 0.2, mining: str = "semi_hard") -> None:
        self.margin = margin
        self.mining = mining

    def _loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]
              ) -> tuple[torch.Tensor, dict[str, float]]:
        views, labels = batch
        b = views.shape[0]
        emb = model(views.reshape(2 * b, -1))
        lab = labels.repeat_interleave(2)
        loss, logs = triplet_loss(emb, lab, self.margin, self.mining)
        with torch.no_grad():
            e = emb.reshape(b, 2, -1)
            sim = e[:, 0] @ e[:, 1].T  # anchor i vs every positive j
            hits = sim.argmax(1) == torch.arange(b, device=sim.device)
            logs["top1"] = float(hits.float().mean())
        return loss, logs

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor,
                                                                   dict[str, float]]:
        return self._loss(model, batch)

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, float]:
        loss, logs = self._loss(model, batch)
        return {"loss": float(loss), **logs}
