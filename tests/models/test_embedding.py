"""Embedding net, triplet loss, musical transforms and the similarity recipe's tiny config."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiofcn.data import transforms as T
from audiofcn.models import load_model
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet
from audiofcn.nn.triplet import triplet_loss

REPO = Path(__file__).resolve().parents[2]
TINY = EmbeddingConfig(segment_seconds=0.5, channels=(4, 8), pools=((2, 2), (2, 2)),
                       embedding_dim=16)


def test_shapes_norms_and_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = EmbeddingNet(TINY).eval()
    x = torch.randn(3, TINY.segment_samples) * 0.1
    e = model(x)
    assert e.shape == (3, 16)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(3))
    assert model(x[:, None]).shape == (3, 16)
    # Gain invariance by construction (per-example standardised log-mel).
    torch.testing.assert_close(model(x * 0.25), e, atol=1e-4, rtol=1e-4)
    path = model.save_pretrained(tmp_path / "emb.safetensors")
    back = load_model(path)
    torch.testing.assert_close(back(x), e)
    assert model.embed(torch.randn(70, TINY.segment_samples), batch_size=32).shape == (70, 16)
    with pytest.raises(ValueError):
        model(torch.randn(2, 2, 3, 100))


def test_gradients_reach_every_parameter() -> None:
    model = EmbeddingNet(TINY)
    loss, _ = triplet_loss(model(torch.randn(8, TINY.segment_samples)),
                           torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard", "all"])
def test_triplet_loss_mining(mining: str) -> None:
    # Perfectly separated clusters: zero loss; swapped labels: positive loss.
    e = torch.nn.functional.normalize(torch.tensor(
        [[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99]]), dim=1)
    good = torch.tensor([0, 0, 1, 1])
    loss, logs = triplet_loss(e, good, margin=0.2, mining=mining)
    assert float(loss) == 0.0 and logs["d_ap"] < logs["d_an"]
    bad, _ = triplet_loss(e, torch.tensor([0, 1, 0, 1]), margin=0.2, mining=mining)
    assert float(bad) > 0.5
    zero, logs = triplet_loss(e, torch.tensor([0, 1, 2, 3]), mining=mining)  # no positives
    assert float(zero) == 0.0 and logs["frac_active"] == 0.0


def test_triplet_loss_decreases_in_a_few_steps() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = EmbeddingNet(EmbeddingConfig(**{**TINY.__dict__, "dropout": 0.0}))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    # 6 "tracks" of band-limited noise with distinct spectra; two transformed views of each.
    base = torch.randn(6, TINY.segment_samples, generator=g)
    tracks = T.band_limit(base, 16000, torch.arange(6) * 800.0, torch.arange(6) * 800.0 + 900)
    aug = T.MusicAugment(T.AugmentConfig(p_pitch=0, p_stretch=0, p_reverb=0, p_codec=0))
    views = torch.cat([aug(tracks, g), aug(tracks, g)])
    labels = torch.arange(6).repeat(2)
    losses = []
    for _ in range(12):
        loss, _ = triplet_loss(model(views), labels, 0.3, "batch_hard")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])


def _tone(f0: float = 440.0, n: int = 16000) -> torch.Tensor:
    t = torch.arange(n) / 16000
    return 0.5 * torch.sin(2 * torch.pi * f0 * t)


def _peak_hz(x: torch.Tensor) -> float:
    spec = torch.fft.rfft(x * torch.hann_window(x.shape[-1])).abs()
    return float(spec.argmax()) * 16000 / x.shape[-1]


def test_transforms_do_what_they_say() -> None:
    g = torch.Generator().manual_seed(0)
    x = _tone()
    assert abs(_peak_hz(T.pitch_shift(x, 12.0)) - 880) < 10
    assert abs(_peak_hz(T.pitch_shift(x, -12.0)) - 220) < 10
    y = T.time_stretch(x, 1.25, keep_length=False)
    assert abs(y.shape[-1] - 16000 / 1.25) <= 1 and abs(_peak_hz(y) - 440) < 10
    torch.testing.assert_close(T.gain(x, 20.0), x * 10.0)
    noisy = T.add_noise(x, 10.0, g)
    snr = 10 * torch.log10(x.pow(2).sum() / (noisy - x).pow(2).sum())
    assert abs(float(snr) - 10.0) < 0.5
    lp = T.band_limit(torch.stack([_tone(300), _tone(5000)]), 16000, 0.0, 2000.0)
    assert lp[1].abs().max() < 0.01 and lp[0].abs().max() > 0.45
    wet = T.reverb(x, 16000, 0.8, g, wet=1.0)
    assert wet.shape == x.shape and wet[-4000:].abs().mean() > 0  # a tail, same loudness
    other = _tone(1000)
    mixed = T.mix_with(x, other, 20.0)
    assert float((mixed - x).pow(2).mean() / x.pow(2).mean()) == pytest.approx(0.01, rel=0.05)
    sim = T.codec(x, 16000, 8.0, backend="simulate")
    assert sim.shape == x.shape and 0 < float((sim - x).abs().mean()) < 0.2
    if T.opus_available():
        op = T.codec(x, 16000, 12.0, backend="opus")
        assert op.shape == x.shape and abs(_peak_hz(op) - 440) < 10
    if T.sndfile_opus_available():  # in-process Opus: aligned, bitrate-dependent error
        lo, hi = (T.codec(x, 16000, k, backend="sndfile") for k in (8.0, 64.0))
        assert lo.shape == hi.shape == x.shape and abs(_peak_hz(lo) - 440) < 10
        assert float((hi - x).pow(2).mean()) < float((lo - x).pow(2).mean())
        assert float((hi - x).pow(2).mean()) < 0.01 * float(x.pow(2).mean())
    with pytest.raises(ValueError):
        T.codec(x, 16000, 8.0, backend="mp3")


def test_augment_is_seeded_and_batched() -> None:
    x = torch.randn(4, 8000) * 0.1
    aug = T.MusicAugment(T.AugmentConfig(p_pitch=1, p_stretch=1, p_eq=1, p_reverb=1, p_mix=1,
                                         p_noise=1, p_codec=1, p_filter=1))
    a = aug(x, torch.Generator().manual_seed(3))
    b = aug(x, torch.Generator().manual_seed(3))
    c = aug(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and torch.isfinite(a).all() and a.abs().max() <= 1.0
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_recipe_tiny_config_trains(tmp_path: Path) -> None:
    from audiofcn.data.synth import SynthConfig, synth_catalog

    data = tmp_path / "data"
    synth_catalog(data, 5, seed=3, config=SynthConfig(duration=2.0), progress=False, workers=1,
                  splits=(0.6, 0.4, 0.0))
    spec = importlib.util.spec_from_file_location("sim_train",
                                                  REPO / "recipes/similarity/train.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sim_train"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path / "run"
    assert mod.main(["--config", str(REPO / "recipes/similarity/configs/tiny.json"),
                     "--data", str(data), "--out", str(out)]) == 0
    info = json.loads((out / "train_info.json").read_text())
    assert info["model"] == "embedding" and len(info["history"]) == 1
    assert np.isfinite(info["history"][0]["valid_loss"])
    assert load_model(out / "best.safetensors").config.embedding_dim == 16


def _recipe_module(name: str, rel: str):  # noqa: ANN202 - a loaded recipe module
    sys.path.insert(0, str(REPO / "recipes/similarity"))
    spec = importlib.util.spec_from_file_location(name, REPO / rel)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_real_recordings_split_and_train(tmp_path: Path) -> None:
    """Only files the split rules allow are trained on (MIR-1K by singer, Philharmonia by
    file hash), and a config with ``data.real`` trains on them next to rendered songs."""
    import soundfile as sf

    from audiofcn.data.synth import SynthConfig, synth_catalog

    real = _recipe_module("sim_real", "recipes/similarity/real.py")
    root = tmp_path / "root"
    (root / "mir1k" / "Wavfile").mkdir(parents=True)
    (root / "sms_tools").mkdir()
    t = np.arange(16000 * 4) / 16000
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), 0.5 * np.sin(2 * np.pi * 330 * t)], 1)
    train_singer = real.MIR1K_TRAIN_SINGERS[0]
    for name in (f"{train_singer}_1_01.flac", "zzheldout_1_01.flac"):
        sf.write(root / "mir1k" / "Wavfile" / name, 0.3 * stereo, 16000)
    sf.write(root / real.CCBY_MUSIC[0], 0.3 * stereo[:, 0], 16000)
    files = real.training_files(root, ["ccby", "mir1k"])
    assert [p.name for _, p in files] == [Path(real.CCBY_MUSIC[0]).name,
                                          f"{train_singer}_1_01.flac"]
    assert not real.trainable("mir1k", "zzheldout_1_01.flac")
    # Philharmonia: the tagging recipe's hash split; about 65 % of names are trainable.
    names = [f"flute_A{i}_1_forte_normal.mp3" for i in range(200)]
    share = np.mean([real.trainable("philharmonia", n) for n in names])
    assert 0.5 < share < 0.8

    data = tmp_path / "data"
    synth_catalog(data, 5, seed=3, config=SynthConfig(duration=2.0), progress=False, workers=1,
                  splits=(0.6, 0.4, 0.0))
    cfg = json.loads((REPO / "recipes/similarity/configs/tiny.json").read_text())
    cfg["data"]["real"] = {"sets": ["ccby", "mir1k"], "seconds_per_item": 1.0}
    cfg["data"]["notes"] = {"n": 2, "seconds": 1.0}  # rendered single notes, 1 item each
    cfg["data"]["augment"] = {"p_codec": 1.0, "codec_backend": "sndfile",
                              "codec_kbps": [14.0, 24.0]}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    mod = _recipe_module("sim_train_real", "recipes/similarity/train.py")
    trainer = mod.build(cfg, data, str(tmp_path / "run"), real_root=root)
    # 3 rendered train songs once + 2 real files of 4 s at 1 s per item, 4 times each + 2 notes
    assert len(trainer.train_loader.dataset.track_of) == 3 + 2 * 4 + 2
    assert mod.main(["--config", str(tmp_path / "cfg.json"), "--data", str(data),
                     "--real-root", str(root), "--out", str(tmp_path / "run2"),
                     "--time-budget", "60"]) == 0
    info = json.loads((tmp_path / "run2" / "train_info.json").read_text())
    assert np.isfinite(info["history"][0]["train_loss"])
