"""On-the-fly training mixtures: shapes, levels, seeded determinism, the recipe's pools."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.io import AudioRecord, write_manifest
from audiofcn.separation.mixing import (
    MixConfig,
    RandomMixSegments,
    SourcePool,
    apply_speed,
    mix_segment,
    speed_rate,
)

SR = 16000
RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "separation"


def _import_recipe(name: str):
    sys.path.insert(0, str(RECIPE))
    try:
        spec = importlib.util.spec_from_file_location(f"sep_recipe_{name}", RECIPE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(RECIPE))


def _noise(n: int, seed: int, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _pools() -> tuple[SourcePool, SourcePool, list[tuple[np.ndarray, np.ndarray]]]:
    voices = SourcePool({"speech": [_noise(9000, 1), _noise(500, 2)], "song": [_noise(7000, 3)]},
                        {"speech": 1.0, "song": 2.0})
    accs = SourcePool({"band": [_noise(12000, 4, 0.3)]}, {"band": 1.0})
    t = np.arange(6000, dtype=np.float32) / SR
    pairs = [(np.sin(2 * np.pi * 440 * t).astype(np.float32),
              2 * np.sin(2 * np.pi * 440 * t).astype(np.float32))]
    return voices, accs, pairs


def test_mix_segment_shape_and_seeded_determinism() -> None:
    voices, accs, pairs = _pools()
    cfg = MixConfig(segment=4000, p_pair=0.3, p_speed=1.0, p_eq=1.0)
    a = [mix_segment(np.random.default_rng(7), voices, accs, pairs, cfg) for _ in range(2)]
    b = mix_segment(np.random.default_rng(8), voices, accs, pairs, cfg)
    assert a[0].shape == (2, 4000) and a[0].dtype == np.float32
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)
    assert np.all(np.isfinite(a[0])) and np.abs(a[0].sum(0)).max() <= 1.0


def test_levels_follow_the_config() -> None:
    voices, accs, _ = _pools()
    cfg = MixConfig(segment=4000, p_pair=0.0, p_speed=0.0, p_eq=0.0, voice_db=(3.0, 3.0),
                    level_db=(-20.0, -20.0), p_second_accompaniment=0.0, p_silent_voice=0.0)
    for seed in range(5):
        v, a = mix_segment(np.random.default_rng(seed), voices, accs, [], cfg)
        if np.sqrt(np.mean(v**2)) < 1e-4:  # a short source placed outside the excerpt
            continue
        assert 20 * np.log10(np.sqrt(np.mean(v**2)) / np.sqrt(np.mean(a**2))) == \
            pytest.approx(3.0, abs=1e-3)
        assert 20 * np.log10(np.sqrt(np.mean((v + a) ** 2))) == pytest.approx(-20.0, abs=1e-3)


def test_recorded_pairs_stay_aligned_and_silence_option() -> None:
    voices, accs, pairs = _pools()
    cfg = MixConfig(segment=3000, p_pair=1.0, p_speed=1.0, semitones=2.0, p_eq=1.0,
                    pair_voice_db=0.0)
    v, a = mix_segment(np.random.default_rng(3), voices, accs, pairs, cfg)
    np.testing.assert_allclose(a, 2 * v, atol=1e-5)  # same excerpt, speed and EQ on both
    silent = MixConfig(segment=3000, p_pair=0.0, p_silent_voice=1.0)
    v, a = mix_segment(np.random.default_rng(3), voices, accs, pairs, silent)
    assert not v.any() and a.any()


def test_speed_rate_and_resampled_length() -> None:
    cfg = MixConfig(segment=2000, p_speed=1.0, semitones=3.0, speed_step_hz=200)
    rng = np.random.default_rng(0)
    rates = {speed_rate(rng, cfg) for _ in range(50)}
    assert len(rates) > 3 and all(r % 200 == 0 for r in rates)
    assert all(SR * 2 ** (-3.2 / 12) <= r <= SR * 2 ** (3.2 / 12) for r in rates)
    up = max(rates)
    x = np.sin(2 * np.pi * 500 * np.arange(int(2000 * up / SR) + 1) / SR).astype(np.float32)
    y = apply_speed(x, up, cfg)
    assert y.shape == (2000,)
    spec = np.abs(np.fft.rfft(y * np.hanning(2000)))
    peak_hz = np.argmax(spec) * SR / 2000
    assert peak_hz == pytest.approx(500 * up / SR, abs=16)  # read faster -> higher pitch


def test_pool_errors_and_dataset_modes() -> None:
    with pytest.raises(ValueError, match="no sources"):
        SourcePool({"a": [_noise(10, 0)]}, {"a": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match=r"p_pair must be in \[0, 1\]"):
        MixConfig(p_pair=1.5)
    voices, accs, pairs = _pools()
    cfg = MixConfig(segment=1000)
    fixed = RandomMixSegments(voices, accs, pairs, cfg, 4, fixed=True, seed=2)
    assert len(fixed) == 4 and fixed[1].shape == (2, 1000)
    torch.testing.assert_close(fixed[1], fixed[1])
    assert not torch.equal(fixed[0], fixed[1])
    train = RandomMixSegments(voices, accs, pairs, cfg, 4)
    torch.manual_seed(5)
    first = train[0]
    torch.manual_seed(5)
    torch.testing.assert_close(train[0], first)  # the trainer's seed decides


def test_recipe_builds_pools_from_manifests(tmp_path: Path) -> None:
    mixes = _import_recipe("mixes")
    recs = []
    for i, (role, group) in enumerate([("voice", "speech"), ("accompaniment", "instruments"),
                                       ("voice", "speech")]):
        sf.write(tmp_path / f"{i}.wav", _noise(SR, i), SR)
        recs.append(AudioRecord(path=f"{i}.wav", duration=1.0, sample_rate=SR, split="train",
                                group=group, meta={"role": role}))
    manifest = write_manifest(tmp_path / "manifest.jsonl", recs)
    spec = json.loads(json.dumps({
        "sources": [{"manifest": str(manifest)}],
        "voice_weights": {"speech": 1.0}, "accompaniment_weights": {"instruments": 1.0},
        "config": {"p_speed": 0.0, "voice_db": [0, 0]}}))
    ds, n = mixes.build_mix_dataset(spec, SR, 8000, 3)
    assert n == 3 and len(ds) == 3 and ds[0].shape == (2, 8000)
    assert ds.cfg.voice_db == (0, 0) and len(ds.voices.groups["speech"]) == 2
    pairs = mixes.sample_pairs(ds, 2)
    assert len(pairs) == 2 and pairs[0][0].shape == (8000,)
