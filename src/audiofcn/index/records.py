"""Plain records of the catalog (search results, add reports) and folder scanning."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff"}


class CatalogError(ValueError):
    """A catalog cannot be created/opened/changed; the message names the folder and problem."""


@dataclass
class SegmentHit:
    segment_id: int
    start: float
    end: float
    score: float


@dataclass
class TrackResult:
    """One result track with its best-matching segments (best first)."""

    track_id: int
    path: str
    score: float
    duration: float
    tags: list[str] = field(default_factory=list)
    segments: list[SegmentHit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "path": self.path, "score": round(self.score, 5),
                "duration": self.duration, "tags": self.tags,
                "segments": [{"segment_id": s.segment_id, "start": round(s.start, 3),
                              "end": round(s.end, 3), "score": round(s.score, 5)}
                             for s in self.segments]}


@dataclass
class AddReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # one-line "<path>: <problem>"
    segments: int = 0
    audio_seconds: float = 0.0
    seconds: float = 0.0


def find_audio_files(folder: str | os.PathLike[str]) -> tuple[list[Path], list[str]]:
    """Audio files under ``folder`` (sorted) and one-line problems: sub-folders that could not
    be listed and dangling links, reported rather than skipped."""
    from audiofcn.io.files import find_audio_files as walk

    root = Path(folder)
    if not root.is_dir():
        raise CatalogError(f"{root}: not a folder")
    found, problems = walk([root])
    files = [p for p in found if p.is_file()]
    problems += [f"{p}: dangling link (to {os.readlink(p)})" for p in found
                 if p.is_symlink() and not p.exists()]
    return files, problems


def manifest_tags(man: Path) -> dict[Path, list[str]]:
    """Tags of an audiofcn manifest (paths relative to its folder), when it exists."""
    from audiofcn.io.manifest import ManifestError, read_manifest

    if not man.exists():
        return {}
    try:
        return {r.resolve(man.parent).resolve(): list(r.tags) for r in read_manifest(man)}
    except ManifestError as err:
        log.warning("ignoring tags: %s", err)
        return {}
