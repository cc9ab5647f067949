from __future__ import annotations

from pathlib import Path

import pytest

from audiofcn.io import AudioRecord, ManifestError, read_manifest, validate_manifest, write_manifest


def test_round_trip_and_split_filter(tmp_path: Path) -> None:
    recs = [AudioRecord("a.wav", 1.0, 16000, "train", tags=["x"], group="s1"),
            AudioRecord("b.wav", 2.0, 16000, "test", stems={"vocals": "b_v.wav"}, group="s2")]
    path = write_manifest(tmp_path / "m.jsonl", recs)
    assert read_manifest(path) == recs
    assert read_manifest(path, split="test") == recs[1:]


def test_validate_finds_missing_files_and_leaks(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(b"x")
    recs = [AudioRecord("a.wav", 1.0, 16000, "train", group="singer1"),
            AudioRecord("b.wav", 1.0, 16000, "test", group="singer1"),
            AudioRecord("a.wav", 1.0, 16000, "holdout")]
    problems = validate_manifest(recs, root=tmp_path)
    assert any("b.wav: file not found" in p for p in problems)
    assert any("singer1" in p and "leaks" in p for p in problems)
    assert any("unknown split" in p for p in problems)
    assert validate_manifest(recs[:1], root=tmp_path) == []


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"path": "a.wav", "duration": 1, "sample_rate": 8000}\n{"path": "b"}\n')
    with pytest.raises(ManifestError, match=r"m.jsonl:2: missing field"):
        read_manifest(path)
    path.write_text('{"path": "a.wav", "duration": 1, "sample_rate": 8000, "colour": 1}\n')
    with pytest.raises(ManifestError, match="unknown field"):
        read_manifest(path)
