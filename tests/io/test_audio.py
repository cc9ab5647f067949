from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.io import AudioError, atomic_output, audio_info, load_audio, save_audio


def test_load_keeps_rate_and_values(wav_file: Path, tone: tuple[np.ndarray, int]) -> None:
    audio, sr = load_audio(wav_file)
    assert sr == tone[1]
    assert audio.shape == (1, len(tone[0]))
    np.testing.assert_allclose(audio[0].numpy(), tone[0], atol=1e-7)


def test_load_resamples_and_keeps_pitch(wav_file: Path) -> None:
    audio, sr = load_audio(wav_file, sr=8000)
    assert sr == 8000 and audio.shape == (1, 4000)
    spectrum = np.abs(np.fft.rfft(audio[0].numpy()))
    assert abs(np.argmax(spectrum) * 8000 / 4000 - 440) <= 2


def test_stereo_mono_and_channel_checks(tmp_path: Path) -> None:
    x = np.stack([np.full(800, 0.2), np.full(800, 0.4)], axis=1).astype(np.float32)
    path = tmp_path / "st.flac"
    sf.write(path, x, 8000)
    stereo, _ = load_audio(path, mono=False)
    assert stereo.shape == (2, 800)
    mono, _ = load_audio(path)
    assert torch.allclose(mono, torch.full((1, 800), 0.3), atol=1e-4)
    with pytest.raises(AudioError, match="expected 1 channel"):
        load_audio(path, expected_channels=1)


def test_offset_and_duration(wav_file: Path) -> None:
    audio, sr = load_audio(wav_file, offset=0.1, duration=0.2)
    assert audio.shape[-1] == int(0.2 * sr)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty file"), (b"this is not audio at all" * 10, "not a readable audio file")],
)
def test_bad_files_give_one_line_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_and_truncated_files(tmp_path: Path, wav_file: Path) -> None:
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav_file.read_bytes()[:3000])
    with pytest.raises(AudioError, match="truncated"):
        audio_info(cut)
    with pytest.raises(AudioError, match="truncated"):
        load_audio(cut)


def test_nan_and_too_many_channels(tmp_path: Path) -> None:
    x = np.zeros(100, dtype=np.float32)
    x[3] = np.nan
    sf.write(tmp_path / "nan.wav", x, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(tmp_path / "nan.wav")
    sf.write(tmp_path / "quad.wav", np.zeros((100, 4), dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="channel count 4"):
        load_audio(tmp_path / "quad.wav", mono=False)


def test_save_round_trip_and_atomicity(tmp_path: Path) -> None:
    x = torch.linspace(-0.5, 0.5, 1000).reshape(1, -1)
    out = save_audio(tmp_path / "sub" / "x.wav", x, 8000, subtype="FLOAT")
    y, sr = load_audio(out)
    assert sr == 8000 and torch.allclose(x, y)
    with pytest.raises(AudioError, match="NaN"):
        save_audio(tmp_path / "bad.wav", torch.full((1, 10), float("nan")), 8000)
    assert not (tmp_path / "bad.wav").exists()
    # A failure inside atomic_output leaves neither the destination nor a temp file behind.
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "never.wav") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("crash mid-write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_atomic_output_gets_normal_permissions(tmp_path: Path) -> None:
    out = save_audio(tmp_path / "x.wav", torch.zeros(1, 10), 8000)
    assert out.stat().st_mode & 0o644 == 0o644  # readable by others, like a plain open()
