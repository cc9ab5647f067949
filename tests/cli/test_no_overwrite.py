"""No command writes over one of its own inputs, however the output path is spelled."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.checks import refuse_overwriting_inputs
from audiofcn.cli.main import UserError, main


def _wav(path: Path, sr: int = 16000, seconds: float = 0.5) -> bytes:
    rng = np.random.default_rng(0)
    sf.write(path, (0.1 * rng.standard_normal(int(sr * seconds))).astype(np.float32), sr,
             format="WAV")
    return path.read_bytes()


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "input" in err[0], err
    return err[0]


def test_helper_resolves_links_and_relative_paths(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a.wav"
    a.write_bytes(b"x")
    (tmp_path / "link.wav").symlink_to(a)
    os.link(a, tmp_path / "hard.wav")
    monkeypatch.chdir(tmp_path)
    for out in ["a.wav", "./a.wav", "sub/../a.wav", str(a), "link.wav", "hard.wav"]:
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(UserError, match="input"):
            refuse_overwriting_inputs([out], [a])
    refuse_overwriting_inputs(["b.wav", "missing/dir/x.wav"], [a])  # fine


def test_aec_refuses_to_overwrite_the_mic(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    mic, ref = tmp_path / "mic.wav", tmp_path / "ref.wav"
    before = _wav(mic)
    _wav(ref)
    _refused(["aec", "--mic", str(mic), "--ref", str(ref), "-o", str(mic)], capsys)
    (tmp_path / "ref_link.wav").symlink_to(ref)
    _refused(["aec", "--mic", str(mic), "--ref", str(ref), "-o", str(tmp_path / "ref_link.wav")],
             capsys)
    assert mic.read_bytes() == before


def test_separate_refuses_to_overwrite_its_input(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "vocals.wav"
    before = _wav(song)
    _refused(["separate", str(song), "-o", str(tmp_path)], capsys)
    assert song.read_bytes() == before


def test_codec_refuses_to_overwrite_its_input(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "song.afc"  # a WAV with an odd name
    before = _wav(song)
    _refused(["encode", str(song), str(song)], capsys)
    (tmp_path / "out.wav").symlink_to(song)
    _refused(["decode", str(song), str(tmp_path / "out.wav")], capsys)
    assert song.read_bytes() == before


def test_tag_refuses_to_overwrite_an_input(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    song = tmp_path / "song.wav"
    before = _wav(song)
    (tmp_path / "tags.csv").symlink_to(song)
    _refused(["tag", str(song), "--out", str(tmp_path / "tags.csv")], capsys)
    assert song.read_bytes() == before


def test_data_manifest_refuses_to_overwrite_a_listed_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "fsdd"
    root.mkdir()
    target = root / "3_jackson_12.wav"
    before = _wav(target, sr=8000, seconds=0.3)
    _refused(["data", "manifest", "fsdd", str(root), "--out", str(target)], capsys)
    assert target.read_bytes() == before
