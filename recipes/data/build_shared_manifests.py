"""Build JSONL manifests for the real recordings in ../shared/data (recipes and benchmarks only).

    python recipes/data/build_shared_manifests.py [--data-root DIR] [--out runs/manifests]

Writes one manifest per folder/task, paths relative to the data root, and prints a summary.
Splits never cut a recording: FSDD by utterance index (the dataset's own test split), MIR-1K by
singer (Hsu & Jang: abjones + amy train), the rest by file (seeded), grouped by source.
"""

from __future__ import annotations

import argparse
import os
from collections import Counter
from pathlib import Path

from audiofcn.data.datasets import build_manifest
from audiofcn.data.datasets._common import audio_files, header, split_groups
from audiofcn.io import AudioRecord, validate_manifest, write_manifest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = Path(os.environ.get("AUDIOFCN_DATA_ROOT", REPO.parent / "shared" / "data"))


def philharmonia(root: Path) -> list[AudioRecord]:
    """Instrument notes: label = instrument, meta = pitch/length/dynamic/articulation."""
    files = audio_files(root / "philharmonia")
    assign = split_groups([f.stem for f in files], 0.15, 0.2, seed=0)
    records = []
    for f in files:
        instrument, pitch, length, dynamic, articulation = (f.stem.split("_") + [""] * 5)[:5]
        duration, sr = header(f)
        records.append(AudioRecord(str(f.relative_to(root)), duration, sr, assign[f.stem],
                                   label=instrument, tags=[instrument], group=f.stem,
                                   meta={"pitch": pitch, "length": length, "dynamic": dynamic,
                                         "articulation": articulation}))
    return records


def plain_folder(root: Path, folder: str, valid: float = 0.15, test: float = 0.2) -> list[
        AudioRecord]:
    """Every audio file of a folder, the role = its sub-folder name, split by file."""
    files = audio_files(root / folder)
    assign = split_groups([str(f) for f in files], valid, test, seed=0)
    records = []
    for f in files:
        duration, sr = header(f)
        role = f.parent.name
        records.append(AudioRecord(str(f.relative_to(root)), duration, sr, assign[str(f)],
                                   label=role, group=f.stem, meta={"role": role}))
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "manifests")
    args = ap.parse_args()
    root = args.data_root
    manifests = {
        "fsdd_digit": lambda: build_manifest("fsdd", root / "fsdd", task="digit"),
        "fsdd_speaker": lambda: build_manifest("fsdd", root / "fsdd", task="speaker"),
        "mir1k": lambda: build_manifest("mir1k", root / "mir1k"),
        "philharmonia": lambda: philharmonia(root),
        "sms_tools": lambda: plain_folder(root, "sms_tools"),
        "librosa": lambda: plain_folder(root, "librosa"),
        "speech": lambda: plain_folder(root, "speech"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"data root: {root}")
    print("| manifest | records | hours | splits |")
    print("|---|---:|---:|---|")
    for name, make in manifests.items():
        records = make()
        if name in ("fsdd_digit", "fsdd_speaker", "mir1k"):
            # Builders give paths relative to their own dataset folder; rebase on the data root.
            sub = {"fsdd_digit": "fsdd", "fsdd_speaker": "fsdd", "mir1k": "mir1k"}[name]
            for r in records:
                r.path = f"{sub}/{r.path}"
                r.stems = {k: f"{sub}/{v}" for k, v in r.stems.items()}
        problems = [p for p in validate_manifest(records, root, check_files=False)]
        if problems:
            raise SystemExit(f"{name}: {problems[0]}")
        write_manifest(args.out / f"{name}.jsonl", records)
        hours = sum(r.duration for r in records) / 3600
        splits = dict(sorted(Counter(r.split for r in records).items()))
        print(f"| {name} | {len(records)} | {hours:.2f} | {splits} |")
    print(f"manifests in {args.out}")


if __name__ == "__main__":
    main()
