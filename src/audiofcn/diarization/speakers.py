"""Enrolled speakers, found again across recordings; stored in an :mod:`audiofcn.index` catalog.

A speaker database is a folder holding an ordinary similarity catalog (FAISS + SQLite) built
with the speaker embedding model, plus ``voices/``: the speech (VAD-trimmed, 16 kHz FLAC) of
every enrolment file under ``voices/<NAME>/`` and a manifest that tags each file with its
speaker's name. Enrolling writes the voice files and manifest, then lets the catalog add the
folder (it skips files it already holds), so the catalog's crash safety and index kinds apply.

Identification embeds the speech of a query, averages it into one unit vector and scores each
enrolled speaker by the mean similarity of its best-matching segments (top ``per_track``);
the best speaker is a match when that score reaches ``threshold`` (chosen on validation
speakers, ``recipes/diarization/evaluate.py --speaker-search``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audiofcn.diarization.embedders import default_model_path
from audiofcn.diarization.vad import FRAME_HOP, energy_vad
from audiofcn.index import Catalog, CatalogError
from audiofcn.io.audio import atomic_output, load_audio, save_audio

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_THRESHOLD = 0.53  # chosen on speechocean762 validation speakers (docs/diarization.md)


@dataclass
class SpeakerMatch:
    name: str
    score: float

    def to_dict(self) -> dict[str, float | str]:
        return {"name": self.name, "score": round(self.score, 4)}


def speech_only(audio: np.ndarray, sr: int) -> np.ndarray:
    """The VAD's speech frames of ``(time,)`` audio, concatenated (all of it if none)."""
    mask = energy_vad(audio, sr)
    if not mask.any():
        return audio
    keep = np.repeat(mask, int(round(FRAME_HOP * sr)))[: len(audio)]
    return audio[: len(keep)][keep]


class SpeakerDB:
    VOICES = "voices"
    MANIFEST = "manifest.jsonl"

    def __init__(self, catalog: Catalog, root: Path, threshold: float) -> None:
        self.catalog, self.root, self.threshold = catalog, root, threshold
        self.sample_rate = catalog.embedder.sample_rate

    @classmethod
    def open(cls, root: str | os.PathLike[str], create: bool = False,
             model: str | os.PathLike[str] | None = None,
             threshold: float = DEFAULT_THRESHOLD) -> SpeakerDB:
        root = Path(root)
        if (root / Catalog.DB).exists():
            cat = Catalog.open(root, writable=create, threads=1)
        elif create:
            cat = Catalog.create(root, model or default_model_path(), hop_seconds=0.75,
                                 threads=1)
        else:
            raise CatalogError(f"{root}: no speaker database here (enroll a speaker first)")
        return cls(cat, root, threshold)

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> SpeakerDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _manifest(self) -> list[dict]:
        p = self.root / self.VOICES / self.MANIFEST
        return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] \
            if p.exists() else []

    def names(self) -> list[str]:
        return sorted({r["tags"][0] for r in self._manifest()})

    def enroll(self, name: str, files: list[str | os.PathLike[str]]) -> int:
        """Add the speech of ``files`` under ``name``; returns the number of segments added."""
        if not NAME.match(name):
            raise ValueError(f"bad speaker name {name!r}: use letters, digits, '_', '.', '-'")
        voices = self.root / self.VOICES
        rows = self._manifest()
        for f in files:
            audio, _ = load_audio(f, sr=self.sample_rate)
            speech = speech_only(audio[0].numpy(), self.sample_rate)
            digest = hashlib.sha1(speech.tobytes()).hexdigest()[:10]
            rel = f"{name}/{Path(f).stem}-{digest}.flac"
            save_audio(voices / rel, torch.from_numpy(speech), self.sample_rate)
            rows = [r for r in rows if r["path"] != rel]
            rows.append({"path": rel, "duration": round(len(speech) / self.sample_rate, 3),
                         "sample_rate": self.sample_rate, "tags": [name]})
        with atomic_output(voices / self.MANIFEST) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        report = self.catalog.add_folder(voices, manifest=voices / self.MANIFEST)
        if report.failed:
            raise CatalogError(report.failed[0])
        return report.segments

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Unit centroid of the speech of ``(time,)`` audio at ``sample_rate``."""
        segs = self.catalog.embedder.embed_audio(
            torch.from_numpy(speech_only(audio, self.sample_rate)))
        m = segs.embeddings.mean(0)
        return m / max(1e-9, float(np.linalg.norm(m)))

    def rank(self, centroid: np.ndarray, per_track: int = 3) -> list[SpeakerMatch]:
        """Every enrolled speaker's score for one unit query vector, best first."""
        n = self.catalog.num_tracks()
        hits = self.catalog.search_embeddings(centroid[None].astype(np.float32), k=max(1, n),
                                              per_track=per_track)
        best: dict[str, float] = {}
        for t in hits:
            score = float(np.mean([s.score for s in t.segments]))
            for name in t.tags:
                best[name] = max(best.get(name, -1.0), score)
        return [SpeakerMatch(k, v) for k, v in sorted(best.items(), key=lambda kv: -kv[1])]

    def identify_file(self, path: str | os.PathLike[str]) -> list[SpeakerMatch]:
        audio, _ = load_audio(path, sr=self.sample_rate)
        return self.rank(self.embed(audio[0].numpy()))

    def name_clusters(self, centroids: dict[str, np.ndarray]) -> dict[str, str]:
        """Diarization labels -> enrolled names for clusters that match (each name once,
        best-scoring pairs first)."""
        pairs = []
        for label, c in centroids.items():
            pairs += [(m.score, label, m.name) for m in self.rank(c) if m.score >= self.threshold]
        out: dict[str, str] = {}
        for _, label, name in sorted(pairs, reverse=True):
            if label not in out and name not in out.values():
                out[label] = name
        return out
