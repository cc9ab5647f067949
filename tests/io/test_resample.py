"""Resampling: any rate with bounded memory, absurd header rates refused cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.io import AudioError, load_audio, resample

# The child reports the growth of its own peak RSS across one resampling call, so the import
# cost of torch does not count. torchaudio's sinc kernel needed 2.75 GB here (8001 -> 16000 Hz).
_CHILD = """
import json, resource, sys, torch
from audiofcn.io import resample
x = torch.zeros(1, 2 * {sr})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y = resample(x, {sr}, 16000)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"growth_mb": (after - before) / 1024, "n": y.shape[-1]}}))
"""


@pytest.mark.parametrize("sr", [8001, 44101])
def test_odd_rate_ratio_needs_little_memory(sr: int) -> None:
    out = subprocess.run([sys.executable, "-c", _CHILD.format(sr=sr)], capture_output=True,
                         text=True, timeout=120, check=True)
    rep = json.loads(out.stdout.strip().splitlines()[-1])
    assert rep["n"] == 32000
    assert rep["growth_mb"] < 200, rep


@pytest.mark.parametrize("sr", [1000, 7999, 22050, 44101, 96000, 384000])
def test_resample_keeps_pitch_and_length(sr: int) -> None:
    f0 = 300.0
    t = np.arange(sr) / sr
    x = torch.from_numpy(np.sin(2 * np.pi * f0 * t).astype(np.float32))[None]
    y = resample(x, sr, 16000)
    assert y.dtype == torch.float32 and y.shape == (1, 16000)
    spec = np.abs(np.fft.rfft(y[0, 2000:-2000].numpy()))
    peak_hz = np.argmax(spec) * 16000 / (16000 - 4000)
    assert abs(peak_hz - f0) < 3


def test_resample_batches_leading_dims_and_keeps_device_dtype() -> None:
    x = torch.randn(2, 3, 4410, dtype=torch.float64)
    y = resample(x, 44100, 16000)
    assert y.shape == (2, 3, 1600) and y.dtype == torch.float64
    # each row is resampled on its own
    assert torch.allclose(y[1, 2], resample(x[1, 2], 44100, 16000), atol=1e-6)


@pytest.mark.parametrize("bad", [0, -16000, 2**31 - 1])
def test_resample_rejects_bad_rates(bad: int) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        resample(torch.zeros(1, 100), bad, 16000)


def test_absurd_header_rate_is_an_audio_error(tmp_path: Path) -> None:
    path = tmp_path / "absurd.wav"
    sf.write(path, np.zeros(100, np.float32), 16000)
    raw = bytearray(path.read_bytes())
    raw[24:28] = (2**31 - 1).to_bytes(4, "little")  # fmt chunk: sample rate
    path.write_bytes(bytes(raw))
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(path, sr=16000)


def test_resampling_failure_is_an_audio_error(tmp_path: Path, monkeypatch) -> None:
    import audiofcn.io.audio as audio_mod

    path = tmp_path / "x.wav"
    sf.write(path, np.zeros(1000, np.float32), 22050)

    def boom(*args, **kwargs):
        raise RuntimeError("resampler exploded")

    monkeypatch.setattr(audio_mod, "resample", boom)
    with pytest.raises(AudioError, match="cannot resample"):
        load_audio(path, sr=16000)
