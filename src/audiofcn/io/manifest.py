"""JSONL manifests: one :class:`AudioRecord` per line, paths relative to a data root."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from audiofcn.io.audio import atomic_output

SPLITS = ("train", "valid", "test")


class ManifestError(ValueError):
    """A manifest line is malformed; the message names the file and line."""


@dataclass
class AudioRecord:
    """One audio item of a dataset.

    ``path`` is relative to the manifest's data root (or absolute). Task fields are optional:
    ``tags`` (multi-label), ``label`` (single-label), ``stems`` (name -> path of each source),
    ``roles`` (name -> path of each signal of a scenario, e.g. mic/ref/near for echo
    cancellation), ``group`` (what must not be split across train/test: artist, singer, speaker,
    source file), and ``meta`` for anything else.
    """

    path: str
    duration: float
    sample_rate: int
    split: str = "train"
    tags: list[str] = field(default_factory=list)
    label: str | None = None
    stems: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def resolve(self, root: str | os.PathLike[str] | None) -> Path:
        p = Path(self.path)
        return p if p.is_absolute() or root is None else Path(root) / p

    def to_json(self) -> str:
        d = asdict(self)
        # Keep lines short: drop empty optional fields.
        return json.dumps({k: v for k, v in d.items() if v not in (None, [], {})},
                          sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AudioRecord:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ManifestError(f"unknown field(s) {sorted(unknown)}")
        missing = {"path", "duration", "sample_rate"} - set(d)
        if missing:
            raise ManifestError(f"missing field(s) {sorted(missing)}")
        return cls(**d)


def write_manifest(path: str | os.PathLike[str], records: Iterable[AudioRecord]) -> Path:
    """Write records as JSONL, atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(r.to_json() + "\n")
    return Path(path)


def read_manifest(path: str | os.PathLike[str], split: str | None = None) -> list[AudioRecord]:
    """Read a JSONL manifest; optionally keep one split."""
    p = Path(path)
    if not p.exists():
        raise ManifestError(f"{p}: manifest not found")
    records = []
    with open(p, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = AudioRecord.from_dict(json.loads(line))
            except (json.JSONDecodeError, ManifestError, TypeError) as err:
                raise ManifestError(f"{p}:{i}: {err}") from None
            if split is None or rec.split == split:
                records.append(rec)
    return records


def validate_manifest(records: list[AudioRecord], root: str | os.PathLike[str] | None = None,
                      check_files: bool = True) -> list[str]:
    """Return a list of problems (empty when valid): bad splits, missing files, and groups that
    leak across splits (the same singer/speaker/source in train and test)."""
    problems: list[str] = []
    group_splits: dict[str, set[str]] = {}
    for r in records:
        if r.split not in SPLITS:
            problems.append(f"{r.path}: unknown split {r.split!r} (expected one of {SPLITS})")
        if r.duration <= 0 or r.sample_rate <= 0:
            problems.append(f"{r.path}: non-positive duration or sample rate")
        if check_files:
            for p in [r.path, *r.stems.values(), *r.roles.values()]:
                full = Path(p) if Path(p).is_absolute() or root is None else Path(root) / p
                if not full.exists():
                    problems.append(f"{full}: file not found")
        if r.group is not None:
            group_splits.setdefault(r.group, set()).add(r.split)
    for g, s in sorted(group_splits.items()):
        if "test" in s and len(s) > 1:
            problems.append(f"group {g!r} appears in splits {sorted(s)}: test leaks into training")
    return problems
