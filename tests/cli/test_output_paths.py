"""Unwritable output paths give one line and exit 1, leave nothing behind, and a killed run's
hidden temporary files are removed by the next run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.main import main
from audiofcn.io.audio import atomic_output, clean_stale_temps


def _wav(path: Path, sr: int = 16000, seconds: float = 0.5) -> Path:
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr)
    return path


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if line.startswith("audiofcn: error")]
    assert len(err) == 1, err
    return err[0]


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_tag_output_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _wav(tmp_path / "f.wav")
    before = _files(tmp_path)
    msg = _one_line_error(["tag", str(f), "--out", str(f / "t.csv"), "--no-progress"], capsys)
    assert "not a directory" in msg.lower() or "exists" in msg.lower()
    assert _files(tmp_path) == before


def test_decode_output_is_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from audiofcn.codec import encode_file, load_codec

    src = _wav(tmp_path / "s.wav", seconds=0.2)
    encode_file(src, tmp_path / "s.afc", 6.0, load_codec())
    (tmp_path / "out.wav").mkdir()
    before = _files(tmp_path)
    msg = _one_line_error(["decode", str(tmp_path / "s.afc"), str(tmp_path / "out.wav")], capsys)
    assert "directory" in msg.lower()
    assert _files(tmp_path) == before


def test_permission_denied_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir", "?")))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    f = _wav(tmp_path / "f.wav")
    msg = _one_line_error(["tag", str(f), "--out", str(tmp_path / "t.csv"), "--no-progress"],
                          capsys)
    assert "permission denied" in msg.lower()


def test_separate_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _wav(tmp_path / "f.wav")
    (tmp_path / "out").write_text("x")
    before = _files(tmp_path)
    _one_line_error(["separate", str(f), "-o", str(tmp_path / "out")], capsys)
    assert _files(tmp_path) == before


def test_data_synth_out_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").write_text("x")
    _one_line_error(["data", "synth", "--out", str(tmp_path / "out"), "--n", "1",
                     "--duration", "0.5", "--workers", "1"], capsys)
    assert (tmp_path / "out").read_text() == "x"


def test_stale_temp_of_a_killed_writer_is_removed(tmp_path: Path) -> None:
    # A writer that is SIGKILLed inside atomic_output leaves its hidden temp file behind.
    code = ("import os, signal, sys\n"
            "from audiofcn.io.audio import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    dest = tmp_path / "vocals.wav"
    subprocess.run([sys.executable, "-c", code, str(dest)], check=False, timeout=60)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".vocals.wav.")]
    assert len(leftovers) == 1 and not dest.exists()
    with atomic_output(tmp_path / "other.wav") as live:  # a live writer's temp file is kept
        live.write_bytes(b"x")
        assert clean_stale_temps(tmp_path) == leftovers
        assert live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.wav"]


def test_separate_removes_stale_temps_of_a_killed_run(tmp_path: Path) -> None:
    code = ("import os, signal, sys\n"
            "from audiofcn.io.audio import atomic_output\n"
            "with atomic_output(sys.argv[1]) as tmp:\n"
            "    tmp.write_bytes(b'half')\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n")
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-c", code, str(out / "vocals.wav")], check=False,
                   timeout=60)
    assert len(list(out.iterdir())) == 1
    f = _wav(tmp_path / "f.wav", seconds=1.0)
    assert main(["separate", str(f), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["accompaniment.wav", "vocals.wav"]
