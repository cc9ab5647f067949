"""``audiofcn separate``: both stems written, folders, clear one-line errors, no partial output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.main import main
from audiofcn.frontend import STFTConfig
from audiofcn.models.separator import FCNSeparator, FCNSeparatorConfig

SR = 8000


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    model = FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=STFTConfig(256, 64),
                                            channels=(4, 8)))
    return model.eval().save_pretrained(tmp_path / "sep.safetensors")


def song(path: Path, channels: int = 2, sr: int = 11025, seconds: float = 1.5) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = (0.2 * rng.standard_normal((int(sr * seconds), channels))).astype(np.float32)
    sf.write(path, x, sr, subtype="FLOAT")
    return x


def test_writes_both_stems_at_input_rate_and_channels(tmp_path: Path, checkpoint: Path) -> None:
    mix = song(tmp_path / "song.wav")
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "song.wav"), "-o", str(out),
                 "--model", str(checkpoint)]) == 0
    v, sr_v = sf.read(out / "vocals.wav")
    a, sr_a = sf.read(out / "accompaniment.wav")
    assert sr_v == sr_a == 11025 and v.shape == a.shape == mix.shape
    np.testing.assert_allclose(v + a, mix, atol=1e-5)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_folder_skips_bad_files_and_exits_1(tmp_path: Path, checkpoint: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "songs"
    src.mkdir()
    song(src / "good.wav", channels=1, sr=SR)
    (src / "broken.wav").write_bytes(b"RIFF....WAVEnot really audio")
    (src / "notes.txt").write_text("ignored: not an audio suffix")
    out = tmp_path / "out"
    assert main(["separate", str(src), "-o", str(out), "--model", str(checkpoint),
                 "--format", "flac"]) == 1
    assert (out / "good" / "vocals.flac").exists()
    assert (out / "good" / "accompaniment.flac").exists()
    assert not (out / "broken").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert any(str(src / "broken.wav") in line for line in err)


@pytest.mark.parametrize("problem", ["missing_input", "empty_file", "bad_model", "threshold"])
def test_errors_are_one_line(tmp_path: Path, checkpoint: Path, problem: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "song.wav"
    song(wav, sr=SR)
    args = ["separate", str(wav), "-o", str(tmp_path / "out"), "--model", str(checkpoint)]
    if problem == "missing_input":
        args[1] = str(tmp_path / "nope.wav")
    elif problem == "empty_file":
        wav.write_bytes(b"")
    elif problem == "bad_model":
        args[-1] = str(wav)  # audio is not a checkpoint
    else:
        args += ["--threshold", "2"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("audiofcn: error:")
    assert not (tmp_path / "out" / "vocals.wav").exists()
