"""Block-wise reading and incremental atomic writing; headers of unknown length; clear
messages for unreadable files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.io import AudioError, audio_info, load_audio
from audiofcn.io.stream import AudioWriter, read_blocks


def _unknown_length_flac(path: Path, x: np.ndarray, sr: int) -> None:
    """A FLAC as a live encoder writes it: STREAMINFO's total-samples field is 0 (unknown)."""
    sf.write(path, x, sr, format="FLAC")
    raw = bytearray(path.read_bytes())
    assert raw[:4] == b"fLaC"
    si = 8  # "fLaC" + metadata block header; total samples: low 4 bits of si+13, si+14..17
    raw[si + 13] &= 0xF0
    raw[si + 14:si + 18] = b"\0\0\0\0"
    path.write_bytes(bytes(raw))


def test_streamed_flac_of_unknown_length_loads(tmp_path: Path) -> None:
    x = (0.1 * np.random.default_rng(0).standard_normal(12345)).astype(np.float32)
    path = tmp_path / "live.flac"
    _unknown_length_flac(path, x, 16000)
    assert sf.info(str(path)).frames >= 2**62  # what libsndfile reports
    audio, sr = load_audio(path)
    assert audio.shape == (1, 12345)
    np.testing.assert_allclose(audio[0].numpy(), x, atol=1e-4)
    assert audio_info(path).frames == 12345
    info, blocks = read_blocks(path, block_frames=1000)
    assert info.frames == 12345 and sum(b.shape[-1] for b in blocks) == 12345


def test_read_blocks_equals_load_audio(tmp_path: Path) -> None:
    x = np.random.default_rng(1).standard_normal((5000, 3)).astype(np.float32) * 0.1
    path = tmp_path / "three.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    info, blocks = read_blocks(path, block_frames=777)
    got = np.concatenate(list(blocks), axis=-1)
    assert info.channels == 3 and got.shape == (3, 5000)
    np.testing.assert_array_equal(got, x.T)


def test_read_blocks_reports_nan_and_truncation(tmp_path: Path) -> None:
    x = np.zeros(4000, np.float32)
    x[3000] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        list(read_blocks(tmp_path / "nan.wav", block_frames=1000)[1])


def test_writer_is_atomic(tmp_path: Path) -> None:
    dest = tmp_path / "out.wav"
    with AudioWriter(dest, 8000, 2) as w:
        w.write(torch.zeros(2, 100))
        w.write(np.ones((2, 50), np.float32) * 0.5)
        assert not dest.exists()
    data, sr = sf.read(dest)
    assert sr == 8000 and data.shape == (150, 2)
    with pytest.raises(RuntimeError), AudioWriter(tmp_path / "half.wav", 8000, 1) as w:
        w.write(np.zeros((1, 10), np.float32))
        raise RuntimeError("killed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]
    with pytest.raises(AudioError, match="NaN"), AudioWriter(tmp_path / "nan.wav", 8000, 1) as w:
        w.write(np.full((1, 10), np.nan, np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_unreadable_file_says_permission_denied(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.wav"
    sf.write(path, np.zeros(100, np.float32), 8000)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(path)
                        else real(p, mode, **kw))
    with pytest.raises(AudioError, match="permission denied"):
        load_audio(path)


def test_no_system_error_wording(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(os.urandom(3000))
    with pytest.raises(AudioError) as err:
        load_audio(path)
    assert "System error" not in str(err.value)
    assert "not a readable audio file" in str(err.value)


def test_writer_failure_is_an_audio_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self, data):
        raise sf.LibsndfileError(0, "No space left on device")

    monkeypatch.setattr(sf.SoundFile, "write", full)
    with pytest.raises(AudioError, match="cannot write"), \
            AudioWriter(tmp_path / "o.wav", 8000, 1) as w:
        w.write(np.zeros((1, 10), np.float32))
    assert list(tmp_path.iterdir()) == []
