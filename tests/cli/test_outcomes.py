"""Folder runs report every failure and exit 1; ``info`` reads what the other commands read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.main import main


def _wav(path: Path, sr: int = 16000, seconds: float = 1.0, channels: int = 1) -> Path:
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32),
             sr)
    return path


def test_info_accepts_eight_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _wav(tmp_path / "eight.wav", channels=8, seconds=0.25)
    assert main(["info", str(f)]) == 0
    assert "8 ch" in capsys.readouterr().out


def test_info_flags_silence_and_single_samples(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 16000)
    sf.write(tmp_path / "one.wav", np.full(1, 0.5, np.float32), 16000)
    assert main(["info", str(tmp_path / "silent.wav"), str(tmp_path / "one.wav")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "silent" in out[0] and "1 sample" in out[1]


def test_index_add_exits_1_when_a_file_fails(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    _wav(lib / "good.wav", seconds=3.0)
    (lib / "bad.wav").write_bytes(b"not audio at all" * 10)
    assert main(["index", "add", str(lib), "--db", str(tmp_path / "cat")]) == 1
    err = capsys.readouterr().err
    assert "bad.wav" in err and "1 file(s) failed" in err


def test_separate_folder_reports_dangling_links(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    songs = tmp_path / "songs"
    songs.mkdir()
    _wav(songs / "a.wav")
    (songs / "gone.wav").symlink_to(tmp_path / "nowhere.wav")
    assert main(["separate", str(songs), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "gone.wav" in err and "dangling link" in err
    assert (tmp_path / "out" / "a" / "vocals.wav").exists()


@pytest.mark.parametrize("manifest", ["missing.jsonl", "bad.jsonl"])
def test_index_add_bad_manifest_is_an_error(tmp_path: Path, manifest: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    _wav(lib / "good.wav", seconds=2.0)
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert main(["index", "add", str(lib), "--db", str(tmp_path / "cat"), "--manifest",
                 str(tmp_path / manifest)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and manifest in err[0]
    assert not (tmp_path / "cat").exists()  # nothing stored
