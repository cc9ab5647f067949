from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from audiofcn.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "audiofcn.cli.main", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_lists_commands() -> None:
    out = run_cli("--help")
    assert out.returncode == 0
    for cmd in ("info", "data", "demo"):
        assert cmd in out.stdout


def test_info_reports_levels(wav_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(wav_file)]) == 0
    out = capsys.readouterr().out
    assert "16000 Hz" in out and "1 ch" in out and "0.500 s" in out


@pytest.mark.parametrize("kind", ["truncated", "empty", "text"])
def test_info_bad_files_exit_nonzero_with_one_line(tmp_path: Path, wav_file: Path,
                                                   kind: str) -> None:
    bad = tmp_path / f"{kind}.wav"
    bad.write_bytes({"truncated": wav_file.read_bytes()[:2000], "empty": b"",
                     "text": b"hello, I am a text file\n"}[kind])
    out = run_cli("info", str(bad))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]


def test_data_synth_command(tmp_path: Path) -> None:
    out = run_cli("data", "synth", "--n", "3", "--out", str(tmp_path / "cat"),
                  "--duration", "1", "--sr", "8000", "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "cat" / "manifest.jsonl").exists()
    assert len(list((tmp_path / "cat" / "audio").glob("*.wav"))) == 3


def test_user_errors_are_one_line_under_python_m(tmp_path: Path) -> None:
    # UserError raised by a command module must be caught when main runs as __main__.
    (tmp_path / "c").write_text("a file")
    out = run_cli("data", "synth", "--n", "1", "--out", str(tmp_path / "c"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"audiofcn: error: {tmp_path / 'c'}: exists and "
                                               "is not a directory"]
