"""Manifest builders for public datasets: a local copy in, JSONL manifests with standard splits out.

Each builder module documents the folder layout it expects and the split it produces, and has
``build(root, **options) -> list[AudioRecord]``. Nothing is downloaded. Use
``audiofcn data manifest NAME ROOT --out manifest.jsonl`` or :func:`build_manifest`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from audiofcn.io.manifest import AudioRecord

BUILDERS: dict[str, str] = {
    "magnatagatune": "audiofcn.data.datasets.magnatagatune",
    "mtg-jamendo": "audiofcn.data.datasets.jamendo",
    "musdb18": "audiofcn.data.datasets.musdb",
    "mir1k": "audiofcn.data.datasets.mir1k",
    "ikala": "audiofcn.data.datasets.ikala",
    "fsdd": "audiofcn.data.datasets.fsdd",
    "urbansound8k": "audiofcn.data.datasets.urbansound8k",
    "esc50": "audiofcn.data.datasets.esc50",
    "aec-challenge": "audiofcn.data.datasets.aec_challenge",
}


def build_manifest(name: str, root: str | Path, **options: Any) -> list[AudioRecord]:
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(BUILDERS))}")
    module = importlib.import_module(BUILDERS[name])
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    return module.build(root, **options)


__all__ = ["BUILDERS", "build_manifest"]
