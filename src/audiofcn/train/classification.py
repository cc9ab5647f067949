"""Tagging / classification training: a clip dataset with random crops and the BCE/CE task.

:class:`ClipDataset` holds decoded clips in memory (resampled to the model's rate) and serves
``(crop, target)`` pairs: a random crop of ``crop_length`` samples when training, the centre
crop otherwise. Targets are multi-hot float vectors for multi-label tagging (BCE) or class
indices for single-label classification (cross-entropy). :class:`TaggingTask` plugs into the
one :class:`~audiofcn.train.Trainer`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from audiofcn.io import AudioRecord, load_audio


def multi_hot(tags: Sequence[str], labels: Sequence[str]) -> torch.Tensor:
    """``(n_labels,)`` float vector, 1 where a label is among ``tags`` (unknown tags ignored)."""
    index = {t: i for i, t in enumerate(labels)}
    y = torch.zeros(len(labels))
    for t in tags:
        if t in index:
            y[index[t]] = 1.0
    return y


def record_target(record: AudioRecord, labels: Sequence[str], multi_label: bool) -> torch.Tensor:
    """Target of a record: multi-hot of ``record.tags`` or the index of ``record.label``."""
    if multi_label:
        return multi_hot(record.tags, labels)
    if record.label is None or record.label not in labels:
        raise ValueError(f"{record.path}: label {record.label!r} is not one of the labels")
    return torch.tensor(list(labels).index(record.label), dtype=torch.long)


def crop_or_pad(audio: torch.Tensor, length: int, start: int | None = None) -> torch.Tensor:
    """``(time,)`` -> ``(length,)``: a crop starting at ``start`` (centre when ``None``), or
    the clip zero-padded at the end when it is shorter."""
    t = audio.shape[-1]
    if t <= length:
        return F.pad(audio, (0, length - t))
    if start is None:
        start = (t - length) // 2
    return audio[start:start + length]


class ClipDataset(Dataset):
    """Clips of a manifest, decoded once, served as fixed-length crops.

    Args:
        records: manifest records (``tags`` for multi-label, ``label`` for single-label).
        root: folder the record paths are relative to.
        labels: the label vocabulary (model outputs, in order).
        sample_rate: resample every clip to this rate.
        crop_length: samples per example.
        multi_label: multi-hot float targets (True) or class indices (False).
        random_crop: random crop position (training) instead of the centre crop.
        gain_jitter_db: training augmentation, random gain in ±dB (0 disables). Note that a
            model whose frontend normalises each example (``normalize="rms"``) undoes it.
        time_shift: training augmentation for clips shorter than ``crop_length``: place the
            clip at a random offset in the zero-padded crop instead of at its start.
        speed_perturb: training augmentation, resample each clip by a random factor in
            ``[1 - s, 1 + s]`` before cropping (tempo and pitch change together, as in speed
            perturbation for speech); 0 disables.
        preload: decode every clip once into memory (small datasets). ``False`` decodes only
            the crop on each access (``load_audio`` with offset/duration from the manifest's
            ``duration``), for datasets that do not fit in memory (MagnaTagATune); use
            ``num_workers`` in the trainer then.
    """

    def __init__(self, records: Sequence[AudioRecord], root: str | os.PathLike[str] | None,
                 labels: Sequence[str], sample_rate: int, crop_length: int,
                 multi_label: bool = True, random_crop: bool = True,
                 gain_jitter_db: float = 0.0, progress: bool = False,
                 preload: bool = True, time_shift: bool = False,
                 speed_perturb: float = 0.0) -> None:
        from tqdm import tqdm

        self.labels = list(labels)
        self.crop_length = crop_length
        self.random_crop = random_crop
        self.gain_jitter_db = gain_jitter_db
        if not 0.0 <= speed_perturb < 1.0:
            raise ValueError(f"speed_perturb must be in [0, 1), got {speed_perturb}")
        if (time_shift or speed_perturb) and not preload:
            raise ValueError("time_shift and speed_perturb need preload=True")
        self.time_shift = time_shift
        self.speed_perturb = speed_perturb
        self.records = list(records)
        self.root = root
        self.sample_rate = sample_rate
        self.preload = preload
        self.audio: list[torch.Tensor] = []
        self.targets = [record_target(r, self.labels, multi_label) for r in self.records]
        if preload:
            for r in tqdm(self.records, desc="loading clips", disable=not progress, leave=False):
                self.audio.append(load_audio(r.resolve(root), sr=sample_rate)[0][0])

    def __len__(self) -> int:
        return len(self.records)

    def _lazy_crop(self, i: int) -> torch.Tensor:
        r = self.records[i]
        seconds = self.crop_length / self.sample_rate
        spare = max(0.0, r.duration - seconds)
        offset = float(torch.rand(())) * spare if self.random_crop else spare / 2
        audio, _ = load_audio(r.resolve(self.root), sr=self.sample_rate, offset=offset,
                              duration=min(seconds, r.duration))
        return crop_or_pad(audio[0], self.crop_length, 0)

    def _augment_length(self, audio: torch.Tensor) -> torch.Tensor:
        """Speed perturbation (training only): linear resampling by a random factor."""
        if not (self.speed_perturb and self.random_crop):
            return audio
        factor = 1.0 + (float(torch.rand(())) * 2 - 1) * self.speed_perturb
        n = max(1, round(audio.shape[-1] / factor))
        return F.interpolate(audio[None, None], size=n, mode="linear",
                             align_corners=False)[0, 0]

    def _crop(self, audio: torch.Tensor) -> torch.Tensor:
        t = audio.shape[-1]
        if not self.random_crop:
            return crop_or_pad(audio, self.crop_length)
        if t > self.crop_length:
            start = int(torch.randint(0, t - self.crop_length + 1, ()))
            return crop_or_pad(audio, self.crop_length, start)
        if self.time_shift and t < self.crop_length:
            left = int(torch.randint(0, self.crop_length - t + 1, ()))
            return F.pad(audio, (left, self.crop_length - t - left))
        return crop_or_pad(audio, self.crop_length)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.preload:
            x = self._lazy_crop(i)
            if self.gain_jitter_db and self.random_crop:
                x = x * 10 ** (((torch.rand(()) * 2 - 1) * self.gain_jitter_db) / 20)
            return x, self.targets[i]
        x = self._crop(self._augment_length(self.audio[i]))
        if self.gain_jitter_db and self.random_crop:
            db = (torch.rand(()) * 2 - 1) * self.gain_jitter_db
            x = x * 10 ** (db / 20)
        return x, self.targets[i]


class TaggingTask:
    """Binary cross-entropy over tags (multi-label) or cross-entropy over classes.

    ``validation_step`` also reports accuracy for single-label and the mean per-example
    precision of the top-1 tag for multi-label (a cheap proxy; the real evaluation is
    :mod:`audiofcn.eval.tagging`).
    """

    def __init__(self, multi_label: bool = True, label_smoothing: float = 0.0) -> None:
        self.multi_label = multi_label
        self.label_smoothing = label_smoothing

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            if self.label_smoothing:
                target = target * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor,
                                                                   dict[str, float]]:
        x, y = batch
        return self.loss(model(x), y), {}

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, float]:
        x, y = batch
        logits = model(x)
        out = {"loss": float(self.loss(logits, y))}
        top = logits.argmax(dim=-1)
        if self.multi_label:
            out["top1_precision"] = float(y.gather(1, top[:, None]).mean())
        else:
            out["accuracy"] = float((top == y).float().mean())
        return out


__all__ = ["ClipDataset", "TaggingTask", "crop_or_pad", "multi_hot", "record_target"]
