"""Chunked file separation equals separating the whole file in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.frontend import STFTConfig
from audiofcn.io import load_audio
from audiofcn.models.separator import FCNSeparator, FCNSeparatorConfig
from audiofcn.separation import separate
from audiofcn.separation.streaming import ChunkedVocals, separate_to_files

SR = 8000


@pytest.fixture
def model() -> FCNSeparator:
    torch.manual_seed(0)
    return FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=STFTConfig(256, 64),
                                           channels=(4, 8))).eval()


@pytest.mark.parametrize("total", [100, 2047, 2048, 2049, 9000])
def test_chunked_vocals_equal_offline_loop(model: FCNSeparator, total: int) -> None:
    from audiofcn.separation.inference import separate_vocals_at_model_rate

    x = torch.randn(2, total) * 0.1
    want = separate_vocals_at_model_rate(x, model, chunk_seconds=0.25, overlap_seconds=0.05)
    sep = ChunkedVocals(model, 2, chunk_seconds=0.25, overlap_seconds=0.05)
    got = [sep.push(x[:, i:i + 333]) for i in range(0, total, 333)]
    got = torch.cat([*got, sep.finish()], -1)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("file_sr,fmt", [(SR, "wav"), (11025, "wav"), (11025, "flac")])
def test_file_equals_whole_file_separation(tmp_path: Path, model: FCNSeparator, file_sr: int,
                                           fmt: str) -> None:
    rng = np.random.default_rng(0)
    n = int(2.6 * file_sr) + 11
    scale = 0.9 if fmt == "flac" else 0.2  # loud enough that the FLAC stems must be scaled
    mix = np.clip(scale * rng.standard_normal((n, 2)), -1, 1).astype(np.float32)
    sf.write(tmp_path / "song.wav", mix, file_sr, subtype="FLOAT")
    v, a = tmp_path / f"vocals.{fmt}", tmp_path / f"accompaniment.{fmt}"
    separate_to_files(tmp_path / "song.wav", v, a, model, chunk_seconds=1.0, read_frames=777)
    audio, _ = load_audio(tmp_path / "song.wav", mono=False)
    res = separate(audio, file_sr, model, chunk_seconds=1.0)
    want_v, want_a = res.vocals.numpy().T, res.accompaniment.numpy().T
    if fmt == "flac":
        peak = max(np.abs(want_v).max(), np.abs(want_a).max())
        assert peak > 1.0
        want_v, want_a = want_v / peak, want_a / peak
    got_v, sr = sf.read(v, dtype="float32")
    got_a, _ = sf.read(a, dtype="float32")
    assert sr == file_sr and got_v.shape == got_a.shape == (n, 2)
    atol = 1e-4 if fmt == "flac" else 1e-5  # FLAC: 16-bit quantisation
    np.testing.assert_allclose(got_v, want_v, atol=atol)
    np.testing.assert_allclose(got_a, want_a, atol=atol)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["song.wav", v.name, a.name])  # no temporaries left
