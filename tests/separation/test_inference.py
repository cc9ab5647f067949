"""Full-track separation: bounded memory, reconstruction, stereo, resampling, mask options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.frontend import STFTConfig
from audiofcn.models.separator import FCNSeparator, FCNSeparatorConfig
from audiofcn.separation import separate, wiener_refine

SR = 8000
STFT_CFG = STFTConfig(n_fft=256, hop_length=64)


class RecordingMask(torch.nn.Module):
    """A stand-in separator: a fixed soft mask (or the identity), recording each call's shape."""

    def __init__(self, value: float | None = 0.3) -> None:
        super().__init__()
        self.config = FCNSeparatorConfig(sample_rate=SR, stft=STFT_CFG)
        self.value = value
        self.calls: list[tuple[int, ...]] = []

    def predict_mask(self, mag: torch.Tensor, **_: object) -> torch.Tensor:
        self.calls.append(tuple(mag.shape))
        if self.value is None:  # frequency-dependent mask in [0, 1]
            return torch.linspace(0, 1, mag.shape[1])[None, :, None].expand_as(mag).clone()
        return torch.full_like(mag, self.value)


def noise(seconds: float, channels: int = 1, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(channels, int(seconds * SR), generator=g)


def test_sixty_seconds_in_bounded_chunks_and_exact_reconstruction() -> None:
    x = noise(60.0)
    model = RecordingMask(None)
    res = separate(x, SR, model, chunk_seconds=5.0, overlap_seconds=0.5)
    assert res.vocals.shape == x.shape == res.accompaniment.shape
    # Memory bound: no model call ever saw more than one chunk of frames.
    max_frames = 5 * SR // STFT_CFG.hop_length + 1
    assert len(model.calls) >= 12 and max(c[-1] for c in model.calls) <= max_frames
    assert torch.allclose(res.vocals + res.accompaniment, x, atol=1e-5)
    # Complementary masks applied per chunk and cross-faded = masking the whole track at once.
    whole = separate(x, SR, RecordingMask(None), chunk_seconds=120.0)
    assert torch.allclose(res.vocals, whole.vocals, atol=1e-3)


def test_identity_mask_reconstructs_the_mixture() -> None:
    x = noise(7.3)
    res = separate(x, SR, RecordingMask(1.0), chunk_seconds=2.0, overlap_seconds=0.25)
    assert torch.allclose(res.vocals, x, atol=1e-5)
    assert res.accompaniment.abs().max() < 1e-5


def test_stereo_resampling_and_mono_vector() -> None:
    x = noise(2.0, channels=2)
    x22 = torch.from_numpy(np.interp(np.arange(int(2.0 * 22050)) * SR / 22050,
                                     np.arange(x.shape[-1]), x[0].numpy())).float()
    res = separate(torch.stack([x22, -x22]), 22050, RecordingMask(0.5))
    assert res.vocals.shape == (2, x22.shape[-1]) and res.sample_rate == 22050
    assert torch.allclose(res.vocals + res.accompaniment, torch.stack([x22, -x22]), atol=1e-5)
    mono = separate(x[0], SR, RecordingMask(0.5))
    assert mono.vocals.shape == (1, x.shape[-1])


def test_threshold_binarises_and_validates() -> None:
    x = noise(1.0)
    below = separate(x, SR, RecordingMask(0.3), threshold=0.35)
    above = separate(x, SR, RecordingMask(0.3), threshold=0.15)
    assert below.vocals.abs().max() < 1e-6
    assert torch.allclose(above.vocals, x, atol=1e-5)
    with pytest.raises(ValueError, match="threshold"):
        separate(x, SR, RecordingMask(), threshold=1.5)
    with pytest.raises(ValueError):
        separate(torch.zeros(1, 0), SR, RecordingMask())


def test_wiener_single_channel_is_power_ratio_and_stereo_runs() -> None:
    spec = torch.randn(1, 9, 7, dtype=torch.complex64)
    mask = torch.rand(1, 9, 7)
    out = wiener_refine(spec, mask)
    ratio = mask**2 / (mask**2 + (1 - mask) ** 2)
    assert torch.allclose(out, spec * ratio, atol=1e-5)
    stereo = torch.randn(2, 9, 7, dtype=torch.complex64)
    assert wiener_refine(stereo, torch.rand(2, 9, 7)).shape == stereo.shape
    x = noise(1.0, channels=2)
    res = separate(x, SR, RecordingMask(0.7), wiener=True)
    assert torch.allclose(res.vocals + res.accompaniment, x, atol=1e-5)


def test_real_fcn_separates_a_whole_track() -> None:
    model = FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=STFT_CFG, channels=(4, 8)))
    x = noise(3.0, channels=2)
    res = separate(x, SR, model, chunk_seconds=1.0, overlap_seconds=0.25)
    assert torch.isfinite(res.vocals).all() and res.vocals.shape == x.shape


def test_shipped_separators_load_by_name(tmp_path) -> None:
    from pathlib import Path

    from audiofcn.separation import load_separator
    from audiofcn.separation.inference import SHIPPED_SEPARATORS, resolve_separator

    for name in SHIPPED_SEPARATORS:
        path = resolve_separator(name)
        assert path.name == f"{name}.safetensors" and path.parent.name == "pretrained"
        assert hasattr(load_separator(name), "predict_mask")
    assert resolve_separator(tmp_path / "m.safetensors") == tmp_path / "m.safetensors"
    assert resolve_separator("runs/x.safetensors") == Path("runs/x.safetensors")


def test_cli_takes_a_shipped_separator_name(tmp_path) -> None:
    import numpy as np
    import soundfile as sf

    from audiofcn.cli.main import main

    x = (0.1 * np.random.default_rng(0).standard_normal((8000, 1))).astype(np.float32)
    sf.write(tmp_path / "song.wav", x, 16000, subtype="FLOAT")
    assert main(["separate", str(tmp_path / "song.wav"), "-o", str(tmp_path / "out"),
                 "--model", "separator_fcn_synth"]) == 0
    v, _ = sf.read(tmp_path / "out" / "vocals.wav")
    a, _ = sf.read(tmp_path / "out" / "accompaniment.wav")
    np.testing.assert_allclose(v + a, x[:, 0], atol=1e-5)
