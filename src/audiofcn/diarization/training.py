"""Training the speaker embedding: speaker-grouped crops, augmentation and two losses.

A dataset item is ``K`` crops of one speaker (from random utterances of that speaker), so a
batch of ``P`` items holds ``P`` speakers x ``K`` crops: every crop has positives and negatives
for the triplet loss (:func:`audiofcn.nn.triplet.triplet_loss`), and speaker ids for the
additive-margin softmax (Wang et al. 2018: ``s * (cos - m)`` on the true class).

The manifest is JSON lines ``{"path", "speaker", "frames", "sample_rate", "start", "end",
"split"}`` where ``start``/``end`` bound the speech (written by ``recipes/diarization/prepare.py``).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from audiofcn.nn.triplet import triplet_loss


@dataclass
class SpeakerAugment:
    p_noise: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    p_reverb: float = 0.3
    rt60: tuple[float, float] = (0.2, 0.7)
    gain_db: tuple[float, float] = (-20.0, 6.0)
    p_lowpass: float = 0.2  # telephone-like band limit (a cheap stand-in for a codec)


def read_manifest(path: str | os.PathLike[str], split: str) -> dict[str, list[dict[str, Any]]]:
    """``speaker -> [utterance records]`` for one split."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in Path(path).read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            if r["split"] == split:
                out.setdefault(r["speaker"], []).append(r)
    return out


def _colored_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec)) + 1.0
    spec /= f ** rng.uniform(0.0, 1.0)  # white .. pink
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-9)


def _room(sr: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    n = int(sr * rt60)
    t = np.arange(n) / sr
    h = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    h[0] = 1.0 / max(1e-3, np.abs(h).max()) * 3.0  # a direct path above the tail
    return h / np.sqrt(np.sum(h ** 2))


def augment(x: np.ndarray, sr: int, cfg: SpeakerAugment, rng: np.random.Generator) -> np.ndarray:
    """One random corruption chain on a ``(time,)`` crop."""
    if rng.random() < cfg.p_reverb:
        from scipy.signal import fftconvolve

        x = fftconvolve(x, _room(sr, rng.uniform(*cfg.rt60), rng))[: len(x)]
    if rng.random() < cfg.p_lowpass:
        from scipy.signal import butter, sosfilt

        x = sosfilt(butter(6, [300, 3400], btype="band", fs=sr, output="sos"), x)
    if rng.random() < cfg.p_noise:
        p = np.mean(x ** 2) + 1e-10
        snr = rng.uniform(*cfg.snr_db)
        x = x + _colored_noise(len(x), rng) * math.sqrt(p / 10 ** (snr / 10))
    x = x / (np.abs(x).max() + 1e-9) * 10 ** (rng.uniform(*cfg.gain_db) / 20) * 0.5
    return x.astype(np.float32)


def speaker_weights(speakers: dict[str, list[dict[str, Any]]], rules: dict[str, float],
                    child_max_age: int = 13) -> dict[str, int]:
    """How many times each speaker appears per pass over the data: the largest matching rule
    (``"<speaker-name prefix>"`` such as ``"so"``, or ``"child"`` for a recorded ``age`` of at
    most ``child_max_age``), rounded, at least 1; speakers no rule matches get 1."""
    out = {}
    for name, recs in speakers.items():
        w = 1.0
        for key, value in rules.items():
            age = recs[0].get("age") if recs else None
            hit = (age is not None and age <= child_max_age) if key == "child" \
                else name.startswith(key)
            if hit:
                w = max(w, value)
        out[name] = max(1, int(round(w)))
    return out


class SpeakerCrops(Dataset):
    """Items ``(crops (K, samples), speaker index)``; ``len = sum(weights) * repeats``.

    ``weights`` (speaker -> integer, default 1 each) repeat a speaker within a pass, so it is
    drawn more often; speaker indices (the classification targets) stay ``sorted(speakers)``.
    Validation (``deterministic=True``) draws the same crops every time (seeded by index).
    """

    def __init__(self, root: str | os.PathLike[str], speakers: dict[str, list[dict[str, Any]]],
                 crop_seconds: float, crops_per_speaker: int, sample_rate: int = 16000,
                 repeats: int = 1, augment: SpeakerAugment | None = None, seed: int = 0,
                 deterministic: bool = False, weights: dict[str, int] | None = None) -> None:
        self.root = Path(root)
        self.names = sorted(speakers)
        self.order = [i for i, n in enumerate(self.names)
                      for _ in range((weights or {}).get(n, 1))]
        self.utts = [speakers[n] for n in self.names]
        self.crop = int(round(crop_seconds * sample_rate))
        self.k = crops_per_speaker
        self.sr = sample_rate
        self.repeats = repeats
        self.aug = augment
        self.seed = seed
        self.deterministic = deterministic
        self._calls = 0

    def __len__(self) -> int:
        return len(self.order) * self.repeats

    def _read(self, rec: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
        start, end = int(rec["start"]), int(rec["end"])
        if end - start > self.crop:
            off = int(rng.integers(start, end - self.crop + 1))
        else:
            off = max(0, min(start, int(rec["frames"]) - self.crop))
        x, sr = sf.read(str(self.root / rec["path"]), start=off, frames=self.crop,
                        dtype="float32", always_2d=True)
        x = x.mean(1)
        if sr != self.sr:
            raise ValueError(f"{rec['path']}: {sr} Hz, expected {self.sr} (re-run prepare)")
        if len(x) < self.crop:  # short utterance: loop it
            x = np.tile(x, int(math.ceil(self.crop / max(1, len(x)))))[: self.crop]
        return x

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        spk = self.order[i % len(self.order)]
        if self.deterministic:
            rng = np.random.default_rng(self.seed * 100003 + i)
        else:
            # a DataLoader worker's seed differs per worker and epoch but follows
            # torch.manual_seed, so training runs repeat exactly (the pid did not)
            self._calls += 1
            worker = torch.utils.data.get_worker_info()
            stream = worker.seed if worker is not None else torch.initial_seed()
            rng = np.random.default_rng((self.seed, i, self._calls, stream))
        crops = []
        for _ in range(self.k):
            rec = self.utts[spk][int(rng.integers(len(self.utts[spk])))]
            x = self._read(rec, rng)
            if self.aug is not None:
                x = augment(x, self.sr, self.aug, rng)
            else:
                x = (x / (np.abs(x).max() + 1e-9) * 0.5).astype(np.float32)
            crops.append(torch.from_numpy(np.ascontiguousarray(x)))
        return torch.stack(crops), spk


def collate_speakers(items: list[tuple[torch.Tensor, int]]) -> dict[str, torch.Tensor]:
    """``P`` items of ``(K, T)`` -> ``{"audio": (P*K, T), "labels": (P*K,)}``."""
    audio = torch.cat([a for a, _ in items])
    labels = torch.cat([torch.full((a.shape[0],), s, dtype=torch.long) for a, s in items])
    return {"audio": audio, "labels": labels}


def verification_logs(emb: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Loss-independent validation numbers (comparable across losses): the share of crops whose
    nearest other crop is another speaker (``"nn_err"``, also ``"loss"``: it selects the
    checkpoint) and the batch-hard triplet loss at margin 0.2 (``"triplet"``; its scale
    depends on the training loss, so it is not used to select)."""
    triplet, _ = triplet_loss(emb, labels, margin=0.2, mining="batch_hard")
    sim = emb @ emb.T
    sim.fill_diagonal_(-2.0)
    nn_err = float((labels[sim.argmax(1)] != labels).float().mean())
    return {"loss": nn_err, "nn_err": nn_err, "triplet": float(triplet)}


class SpeakerTripletTask:
    """Triplet loss with in-batch mining on ``P x K`` batches."""

    def __init__(self, margin: float = 0.2, mining: str = "batch_hard") -> None:
        self.margin, self.mining = margin, mining

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        emb = model(batch["audio"])
        return triplet_loss(emb, batch["labels"], self.margin, self.mining)

    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]
                        ) -> dict[str, float]:
        return verification_logs(model(batch["audio"]), batch["labels"])


class SpeakerAMSoftmaxTask:
    """Additive-margin softmax over the training speakers (the model needs ``num_classes``);
    ``triplet_weight`` > 0 adds the triplet loss on the same batch."""

    def __init__(self, scale: float = 30.0, margin: float = 0.2,
                 triplet_weight: float = 0.0) -> None:
        self.scale, self.margin, self.triplet_weight = scale, margin, triplet_weight

    def training_step(self, model: nn.Module, batch: dict[str, torch.Tensor]
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        core = getattr(model, "module", model)  # DDP wraps the model
        emb = model(batch["audio"])
        labels = batch["labels"]
        cos = core.logits(emb)
        logits = self.scale * (cos - self.margin * F.one_hot(labels, cos.shape[1]))
        loss = F.cross_entropy(logits, labels)
        logs = {"acc": float((cos.argmax(1) == labels).float().mean())}
        if self.triplet_weight > 0:
            t, _ = triplet_loss(emb, labels, 0.2, "batch_hard")
            loss = loss + self.triplet_weight * t
            logs["triplet"] = float(t.detach())
        return loss, logs

    def validation_step(self, model: nn.Module, batch: dict[str, torch.Tensor]
                        ) -> dict[str, float]:
        return verification_logs(model(batch["audio"]), batch["labels"])
