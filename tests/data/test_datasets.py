"""Dataset manifest builders on tiny fake layouts made in tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.main import main
from audiofcn.data.datasets import build_manifest
from audiofcn.data.datasets._common import LayoutError
from audiofcn.io import read_manifest, validate_manifest


def _wav(path: Path, seconds: float = 0.1, sr: int = 8000, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros((int(seconds * sr), channels), dtype=np.float32), sr)


def test_fsdd_end_to_end_through_cli(tmp_path: Path) -> None:
    root = tmp_path / "fsdd"
    for digit in range(3):
        for speaker in ("jackson", "theo"):
            for index in (0, 4, 7, 20):
                _wav(root / "recordings" / f"{digit}_{speaker}_{index}.wav")
    (root / "recordings" / "README.txt").write_text("not audio")
    out = tmp_path / "fsdd_speaker.jsonl"
    assert main(["data", "manifest", "fsdd", str(root), "--out", str(out),
                 "--option", "task=speaker"]) == 0
    records = read_manifest(out)
    assert len(records) == 24
    assert {r.label for r in records} == {"jackson", "theo"}
    by_split = {s: {r.meta["index"] for r in records if r.split == s} for s in
                ("train", "valid", "test")}
    assert by_split == {"train": {20}, "valid": {7}, "test": {0, 4}}
    assert validate_manifest(records, root=root) == []
    assert records[0].duration == pytest.approx(0.1) and records[0].sample_rate == 8000


def test_mir1k_splits_by_singer_and_references_channels(tmp_path: Path) -> None:
    root = tmp_path / "mir1k"
    for singer in ("abjones", "amy", "bobon", "yifen"):
        for clip in (1, 2):
            _wav(root / "Wavfile" / f"{singer}_1_{clip:02d}.wav", sr=16000, channels=2)
    records = build_manifest("mir1k", root)
    splits = {r.group: r.split for r in records}
    assert splits == {"abjones": "train", "amy": "train", "bobon": "test", "yifen": "test"}
    assert records[0].stems["vocals"].endswith("#1")
    assert validate_manifest(records, check_files=False) == []
    seeded = build_manifest("mir1k", root, split="singers", valid=0.25, test=0.25)
    assert validate_manifest(seeded, check_files=False) == []  # no singer in two splits


def test_mtat_folder_split_and_top_tags(tmp_path: Path) -> None:
    root = tmp_path / "mtat"
    header = "clip_id\tguitar\tpiano\trare\tmp3_path"
    rows = [f"{i}\t1\t{i % 2}\t0\t{d}/artist-track{i}-0-29.mp3"
            for i, d in enumerate("0bcdf")]
    (root).mkdir()
    (root / "annotations_final.csv").write_text("\n".join([header, *rows]) + "\n")
    records = build_manifest("magnatagatune", root, n_tags=2)
    assert [r.split for r in records] == ["train", "train", "valid", "test", "test"]
    assert records[1].tags == ["guitar", "piano"] and records[0].tags == ["guitar"]


def test_missing_layout_is_explained(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="annotations_final.csv: missing"):
        build_manifest("magnatagatune", tmp_path)
    with pytest.raises(KeyError, match="unknown dataset"):
        build_manifest("imagenet", tmp_path)
    assert main(["data", "manifest", "esc50", str(tmp_path / "nope"), "--out",
                 str(tmp_path / "m.jsonl")]) == 1
    assert not (tmp_path / "m.jsonl").exists()
