"""Separator models: IBM target, shapes, training steps lower the loss, checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from audiofcn.frontend import STFT, STFTConfig
from audiofcn.models import load_model
from audiofcn.models.separator import (
    FCNSeparator,
    FCNSeparatorConfig,
    PatchSeparator,
    PatchSeparatorConfig,
)
from audiofcn.separation import (
    IBMMaskTask,
    MaskedVocalAETask,
    StemSegments,
    ideal_binary_mask,
    smooth_labels,
)

SR = 8000
TINY_STFT = STFTConfig(n_fft=256, hop_length=64)


def tiny_patch() -> PatchSeparator:
    return PatchSeparator(PatchSeparatorConfig(
        sample_rate=SR, stft=TINY_STFT, context_frames=5, conv_channels=(4, 4, 8, 4),
        kernel_freq=6, pool_freq=4, hidden=(32, 16), dropout=0.0))


def tiny_fcn() -> FCNSeparator:
    return FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=TINY_STFT, channels=(4, 8, 8),
                                           dropout=0.0))


def toy_stems(seconds: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """'Voice' = a vibrato tone near 1 kHz with on/off notes, 'accompaniment' = 250 Hz + noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    gate = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)
    voice = 0.5 * gate * np.sin(2 * np.pi * (1000 * t + 5 * np.sin(2 * np.pi * 5 * t)))
    acc = 0.4 * np.sin(2 * np.pi * 250 * t) + 0.02 * rng.standard_normal(t.shape)
    return voice.astype(np.float32), acc.astype(np.float32)


def test_ibm_on_toy_mixture() -> None:
    voice, acc = toy_stems()
    stft = STFT(TINY_STFT)
    v, a = stft(torch.from_numpy(voice)).abs(), stft(torch.from_numpy(acc)).abs()
    ibm = ideal_binary_mask(v, a)
    assert set(ibm.unique().tolist()) <= {0.0, 1.0}
    bin_1k, bin_250 = round(1000 / SR * 256), round(250 / SR * 256)
    voiced = v[bin_1k] > 10 * a[bin_1k]  # frames where the tone sounds
    assert voiced.any() and ibm[bin_1k][voiced].all()
    assert not ibm[bin_250].any()  # the accompaniment's partial is always louder there
    smooth = smooth_labels(ibm, 0.02)
    assert torch.allclose(smooth[ibm == 1], torch.tensor(0.98))
    assert torch.allclose(smooth[ibm == 0], torch.tensor(0.02))


def test_patch_model_shapes_and_centre_frame() -> None:
    model = tiny_patch().eval()
    f = TINY_STFT.n_freqs
    assert model(torch.rand(3, f, 5)).shape == (3, f, 5)
    with pytest.raises(ValueError, match="expected patches"):
        model(torch.rand(3, f, 7))
    mag = torch.rand(2, f, 23)
    mask = model.predict_mask(mag)
    assert mask.shape == mag.shape and 0 <= mask.min() and mask.max() <= 1
    # Sliding one frame at a time keeps the centre column of the patch centred on each frame.
    padded = torch.nn.functional.pad(mag, (2, 2))
    with torch.no_grad():
        centre = torch.sigmoid(model(padded[1:2, :, 10:15]))[0, :, 2]
    assert torch.allclose(mask[1, :, 10], centre, atol=1e-6)
    # Disjoint patches: every column of each patch is kept.
    fast = model.predict_mask(mag, patch_hop=5)
    assert fast.shape == mag.shape
    with torch.no_grad():
        assert torch.allclose(fast[0, :, 5:10], torch.sigmoid(model(mag[:1, :, 5:10]))[0],
                              atol=1e-6)
    with pytest.raises(ValueError):
        model.predict_mask(mag, patch_hop=3)


def test_paper_config_parameter_count() -> None:
    cfg = PatchSeparatorConfig.paper()
    assert cfg.stft.n_freqs == 2049 and cfg.sample_rate == 22050
    # conv stack + FC 4032->2048->512->9*2049 (a meta-device build: no memory, no time)
    with torch.device("meta"):
        n = PatchSeparator(cfg).num_parameters()
    assert 18e6 < n < 20e6


@pytest.mark.parametrize("frames,stem", [(1, (1, 1)), (16, (1, 1)), (37, (1, 1)), (37, (2, 2)),
                                         (5, (2, 1))])
def test_fcn_any_length(frames: int, stem: tuple[int, int]) -> None:
    model = FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=TINY_STFT, channels=(4, 8, 8),
                                            stem_stride=stem)).eval()
    mag = torch.rand(2, TINY_STFT.n_freqs, frames)
    assert model(mag).shape == mag.shape
    m = model.predict_mask(mag)
    assert m.shape == mag.shape and 0 <= m.min() and m.max() <= 1


def _batch(n: int = 4, seconds: float = 0.5) -> torch.Tensor:
    pairs = [toy_stems(2.0, seed=s) for s in range(3)]
    ds = StemSegments(pairs, int(seconds * SR), n, fixed=True)
    return torch.stack([ds[i] for i in range(n)])


@pytest.mark.parametrize("kind", ["fcn", "patch"])
def test_few_steps_lower_ibm_loss(kind: str) -> None:
    torch.manual_seed(0)
    model = tiny_fcn() if kind == "fcn" else tiny_patch()
    task = IBMMaskTask(patch_frames=model.patch_frames, patches_per_item=4)
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        torch.manual_seed(5)  # the same random patches each step: a fixed batch to fit
        loss, logs = task.training_step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert 0.0 <= logs["pixel_accuracy"] <= 1.0
    assert all(map(math.isfinite, losses))
    assert np.mean(losses[-3:]) < 0.9 * losses[0]


def test_autoencoder_pretraining_lowers_loss() -> None:
    torch.manual_seed(0)
    model = tiny_patch()
    task = MaskedVocalAETask(patch_frames=model.patch_frames, patches_per_item=4)
    batch = _batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        torch.manual_seed(5)
        loss, _ = task.training_step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.85 * losses[0]


def test_stem_segments_sampling() -> None:
    pairs = [toy_stems(1.0, seed=s) for s in range(2)]
    ds = StemSegments(pairs, 2 * SR, 5)  # longer than the clips: zero-padded
    item = ds[0]
    assert item.shape == (2, 2 * SR) and item[:, SR:].abs().sum() == 0
    fixed = StemSegments(pairs, SR // 2, 5, fixed=True)
    assert torch.equal(fixed[3], fixed[3])
    with pytest.raises(ValueError):
        StemSegments([(np.zeros(10), np.zeros(11))], 4, 1)


@pytest.mark.parametrize("make", [tiny_patch, tiny_fcn])
def test_checkpoint_round_trip(tmp_path: Path, make) -> None:
    model = make().eval()
    path = model.save_pretrained(tmp_path / "sep.safetensors")
    again = load_model(path)
    assert type(again) is type(model) and again.config == model.config
    mag = torch.rand(1, TINY_STFT.n_freqs, 10)
    assert torch.allclose(again.predict_mask(mag), model.predict_mask(mag))


def test_fcn_refine_branch_and_frequency_norm() -> None:
    torch.manual_seed(0)
    cfg = FCNSeparatorConfig(sample_rate=SR, stft=TINY_STFT, channels=(4, 8, 8),
                             stem_stride=(2, 2), refine_channels=3, freq_norm=True)
    model = FCNSeparator(cfg).eval()
    assert model.head.in_channels == 4 + 3 and model.freq_scale.shape == (TINY_STFT.n_freqs, 1)
    mag = torch.rand(2, TINY_STFT.n_freqs, 37)
    with torch.no_grad():
        out = model(mag)
        assert out.shape == mag.shape
        model.freq_scale[20] = 3.0  # the per-bin affine is on the input path
        scaled = model(mag)
        assert not torch.allclose(scaled, out)
        model.refine[0].weight.zero_()  # so is the full-resolution branch
        assert not torch.allclose(model(mag), scaled)
    with pytest.raises(ValueError, match="strided stem"):
        FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=TINY_STFT, channels=(4, 8),
                                        refine_channels=2))
    # Default configs keep the shipped parameter names and shapes.
    plain = FCNSeparator(FCNSeparatorConfig(sample_rate=SR, stft=TINY_STFT, channels=(4, 8, 8)))
    assert not any(k.startswith(("refine", "freq_")) for k in plain.state_dict())
    assert plain.head.kernel_size == (1, 1)


def test_ibm_loss_with_magnitude_reconstruction_term() -> None:
    torch.manual_seed(0)
    model = tiny_fcn().eval()
    batch = _batch()
    plain, recon = IBMMaskTask(), IBMMaskTask(recon_weight=2.0)
    with torch.no_grad():
        base = plain.validation_step(model, batch)
        both = recon.validation_step(model, batch)
        mix, voice, _ = plain.spectra(model, batch)
        expected = ((torch.sigmoid(model(mix)) * mix - voice).abs().mean() / mix.mean())
    assert both["recon"] == pytest.approx(float(expected), rel=1e-5)
    assert both["loss"] == pytest.approx(base["loss"] + 2.0 * float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="recon_weight"):
        IBMMaskTask(recon_weight=-1.0)
