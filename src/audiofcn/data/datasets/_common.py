"""Helpers shared by the dataset builders."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofcn.io.audio import AudioError, audio_info

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


class LayoutError(FileNotFoundError):
    """The folder does not have the documented layout; the message says what is missing."""


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise LayoutError(f"{path}: missing ({what}); see data_manifests/README.md for the layout")
    return path


def header(path: Path) -> tuple[float, int]:
    """(duration seconds, sample rate) from the file header, without decoding."""
    try:
        info = audio_info(path)
    except AudioError:
        raise
    except (RuntimeError, sf.LibsndfileError) as err:  # pragma: no cover - defensive
        raise AudioError(path, str(err)) from None
    return info.duration, info.sample_rate


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def read_rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def split_groups(groups: Iterable[str], valid: float, test: float, seed: int) -> dict[str, str]:
    """Assign whole groups (singers, artists, speakers) to splits, seeded."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    n_test = max(1, round(test * len(unique))) if test > 0 else 0
    n_valid = max(1, round(valid * len(unique))) if valid > 0 else 0
    out = {}
    for rank, i in enumerate(order):
        out[unique[i]] = "test" if rank < n_test else "valid" if rank < n_test + n_valid \
            else "train"
    return out
