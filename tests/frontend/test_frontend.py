"""The frontend against librosa (same parameters) and its own invariants."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch

from audiofcn.frontend import (
    ISTFT,
    STFT,
    LogMelConfig,
    LogMelFrontend,
    MelConfig,
    MelSpectrogram,
    Spectrogram,
    STFTConfig,
    StreamingSTFT,
    WaveformFrontend,
    frame_waveform,
)


@pytest.fixture
def signal() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(16000) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 330 * t) + 0.05 * torch.randn(2, 16000, generator=g))


def test_stft_matches_librosa(signal: torch.Tensor) -> None:
    ours = STFT(STFTConfig(512, 128))(signal)[1].numpy()
    ref = librosa.stft(signal[1].numpy(), n_fft=512, hop_length=128)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=2e-4)


# Stated tolerances: mel power within 1e-5 relative to the peak; log-mel within 1e-3 dB.
@pytest.mark.parametrize(("sr", "n_fft", "hop", "n_mels"), [(16000, 512, 256, 96),
                                                           (22050, 1024, 256, 128),
                                                           (12000, 512, 256, 96)])
def test_mel_and_logmel_match_librosa(sr: int, n_fft: int, hop: int, n_mels: int) -> None:
    x = torch.randn(sr) * 0.1
    cfg = MelConfig(sr, STFTConfig(n_fft, hop), n_mels)
    mel = MelSpectrogram(cfg)(x).numpy()
    ref = librosa.feature.melspectrogram(y=x.numpy(), sr=sr, n_fft=n_fft, hop_length=hop,
                                         n_mels=n_mels)
    assert mel.shape == ref.shape
    assert np.abs(mel - ref).max() <= 1e-5 * ref.max()
    db = LogMelFrontend(LogMelConfig(cfg))(x).numpy()
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=80.0)
    assert np.abs(db - ref_db).max() < 1e-3


def test_log1p_compression_and_batch_shapes(signal: torch.Tensor) -> None:
    fe = LogMelFrontend(LogMelConfig(MelConfig(16000, STFTConfig(512, 256), 48),
                                     compression="log1p", log1p_c=100.0))
    x = signal.reshape(1, 2, -1)
    out = fe(x)
    assert out.shape == (1, 2, 48, 1 + 16000 // 256)
    mel = MelSpectrogram(fe.config.mel)(x)
    assert torch.allclose(out, torch.log1p(100.0 * mel))


def test_istft_inverts_stft(signal: torch.Tensor) -> None:
    for window in ("hann", "sqrt_hann"):
        cfg = STFTConfig(512, 128, window=window)
        spec = STFT(cfg)(signal)
        y = ISTFT(cfg)(spec, length=signal.shape[-1])
        assert torch.allclose(y, signal, atol=1e-5)


def test_power_and_magnitude(signal: torch.Tensor) -> None:
    spec = STFT()(signal)
    assert torch.allclose(Spectrogram(power=2.0)(signal), spec.abs() ** 2, rtol=1e-5, atol=1e-6)
    assert torch.allclose(Spectrogram(power=1.0)(signal), spec.abs(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk", [1, 100, 256, 777, 5000])
def test_streaming_stft_equals_offline(signal: torch.Tensor, chunk: int) -> None:
    cfg = STFTConfig(512, 256)
    stream = StreamingSTFT(cfg)
    parts = [stream.push(c) for c in torch.split(signal, chunk, dim=-1)] + [stream.flush()]
    assert torch.equal(torch.cat(parts, dim=-1), STFT(cfg)(signal))


def test_streaming_latency_is_bounded(signal: torch.Tensor) -> None:
    cfg = STFTConfig(512, 256)
    stream = StreamingSTFT(cfg)
    # The first frame (centred on sample 0) needs n_fft - n_fft // 2 = 256 samples; each later
    # frame needs one more hop.
    assert stream.push(signal[:, :255]).shape[-1] == 0
    assert stream.push(signal[:, 255:256]).shape[-1] == 1
    assert stream.push(signal[:, 256:511]).shape[-1] == 0
    assert stream.push(signal[:, 511:512]).shape[-1] == 1


def test_waveform_framing() -> None:
    x = torch.arange(10.0)
    frames = frame_waveform(x, 4, 3)
    assert frames.tolist() == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    padded = frame_waveform(torch.arange(11.0), 4, 3, pad_end=True)
    assert padded.shape == (4, 4) and padded[-1].tolist() == [9, 10, 0, 0]
    with pytest.raises(ValueError, match="shorter than one frame"):
        frame_waveform(torch.zeros(3), 4, 2)
    out = WaveformFrontend()(torch.randn(3, 100))
    assert out.shape == (3, 1, 100)


def test_frontend_exports(signal: torch.Tensor) -> None:
    fe = LogMelFrontend()
    exported = torch.export.export(fe, (signal,))
    assert torch.allclose(exported.module()(signal), fe(signal))


def test_logmel_is_differentiable_and_batch_consistent(signal: torch.Tensor) -> None:
    fe = LogMelFrontend(LogMelConfig(compression="log1p"))
    x = signal.clone().requires_grad_(True)
    out = fe(x)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # The CPU path computes one signal at a time with a sparse filterbank: same values as the
    # dense batched product.
    dense = torch.log1p(fe.config.log1p_c * torch.matmul(
        fe.mel.filterbank, fe.mel.spectrogram(signal)[..., : fe.mel.n_used_bins, :]))
    assert torch.allclose(out.detach(), dense, atol=1e-5)
