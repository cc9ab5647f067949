"""Separation metrics: BSS-Eval wrapper, NSDR, duration weighting, SI-SDR, oracle and floor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.eval.separation import (
    ClipScores,
    bss_eval,
    global_scores,
    ibm_oracle,
    mixture_floor,
    score_clip,
    si_sdr,
)
from audiofcn.frontend import STFTConfig

SR = 8000


def stems(seed: int = 0, seconds: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voice = 0.5 * np.sin(2 * np.pi * 900 * t) * (np.sin(2 * np.pi * 3 * t) > 0)
    acc = 0.3 * np.sin(2 * np.pi * 200 * t) + 0.05 * rng.standard_normal(t.shape)
    return torch.tensor(voice, dtype=torch.float32), torch.tensor(acc, dtype=torch.float32)


def test_si_sdr_is_scale_invariant_and_orders_quality() -> None:
    v, a = stems()
    assert si_sdr(v, 3.0 * v) > 80
    assert si_sdr(v, v + 0.01 * a) > si_sdr(v, v + 0.1 * a) > si_sdr(v, v + a)
    assert abs(si_sdr(v, 2 * (v + 0.1 * a)) - si_sdr(v, v + 0.1 * a)) < 1e-6


def test_oracle_beats_mixture_and_nsdr() -> None:
    v, a = stems()
    floor = score_clip("c", SR, v, a, *mixture_floor(v, a))
    est_v, est_a = ibm_oracle(v, a, STFTConfig(256, 64))
    assert torch.allclose(est_v + est_a, v + a, atol=1e-5)
    ceil = score_clip("c", SR, v, a, est_v, est_a, mixture_voice_sdr=floor.voice_sdr)
    assert ceil.voice_sdr > floor.voice_sdr + 5
    assert ceil.voice_nsdr == pytest.approx(ceil.voice_sdr - floor.voice_sdr)
    assert ceil.duration == pytest.approx(1.0)


def test_bss_eval_errors() -> None:
    v, a = stems()
    with pytest.raises(ValueError, match="silent"):
        bss_eval(torch.zeros_like(v), a, v, a)
    with pytest.raises(ValueError, match="shape"):
        bss_eval(v, a, v[:-5], a[:-5])


def row(clip: str, dur: float, nsdr: float) -> ClipScores:
    return ClipScores(clip, dur, voice_sdr=nsdr, voice_sir=2 * nsdr, voice_sar=nsdr + 1,
                      acc_sdr=0.0, acc_sir=0.0, acc_sar=0.0, voice_si_sdr=nsdr, voice_nsdr=nsdr)


def test_global_scores_are_duration_weighted() -> None:
    g = global_scores([row("a", 1.0, 0.0), row("b", 3.0, 4.0)])
    assert g["GNSDR"] == pytest.approx(3.0)  # (1*0 + 3*4) / 4, not the plain mean 2.0
    assert g["GSIR"] == pytest.approx(6.0) and g["GSAR"] == pytest.approx(4.0)
    assert g["clips"] == 2 and g["seconds"] == pytest.approx(4.0)
    no_nsdr = row("c", 1.0, 1.0)
    no_nsdr.voice_nsdr = None
    assert global_scores([no_nsdr])["GNSDR"] is None
    with pytest.raises(ValueError):
        global_scores([])
