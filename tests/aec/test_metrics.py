"""AEC metrics and classical baselines (PBFDAF always, speexdsp when installed)."""

import numpy as np
import pytest

from audiofcn.aec.baselines import SpeexEchoCanceller, pbfdaf, speexdsp_available
from audiofcn.aec.metrics import clip_metrics, erle, si_sdr, summarize


def _echo_case(n: int = 32000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = (0.1 * rng.standard_normal(n)).astype(np.float32)
    h = (rng.standard_normal(600) * np.exp(-np.arange(600) / 100.0)).astype(np.float32)
    h[:16] = 0.0
    echo = np.convolve(ref, 0.3 * h)[:n].astype(np.float32)
    return ref, echo


def test_metric_definitions():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000)
    assert erle(x, 0.1 * x) == pytest.approx(20.0)
    assert si_sdr(x, 3.0 * x) > 100
    noisy = x + 0.1 * rng.standard_normal(16000)
    assert si_sdr(x, noisy) == pytest.approx(20.0, abs=0.3)
    assert set(clip_metrics("far_single", x, x, x)) == {"erle"}
    rows = [{"system": "a", "scenario": "far_single", "erle": 3.0},
            {"system": "a", "scenario": "far_single", "erle": 5.0, "pesq": float("nan")}]
    s = summarize(rows)["a"]["far_single"]
    assert s["erle"] == 4.0 and s["n"] == 2 and "pesq" not in s


def test_pbfdaf_converges_on_linear_echo():
    ref, echo = _echo_case()
    out = pbfdaf(echo, ref)
    assert out.shape == echo.shape
    assert erle(echo[-8000:], out[-8000:]) > 15.0  # converging: > 15 dB after 1.5 s
    assert erle(echo[:2000], out[:2000]) < erle(echo[-8000:], out[-8000:])
    with pytest.raises(ValueError):
        pbfdaf(echo, ref[:-1])


def test_pbfdaf_never_amplifies():
    rng = np.random.default_rng(1)
    mic = rng.standard_normal(16000).astype(np.float32)  # near-end only: nothing to cancel
    ref = rng.standard_normal(16000).astype(np.float32)
    out = pbfdaf(mic, ref)
    assert erle(mic, out) >= -0.5


def test_speexdsp_through_ctypes():
    if not speexdsp_available():
        pytest.skip("libspeexdsp not installed (apt-get install libspeexdsp1)")
    ref, echo = _echo_case(48000, seed=2)
    aec = SpeexEchoCanceller(16000, 160, 1024, preprocess=False)
    out = aec.run(echo, ref)
    assert out.shape == echo.shape
    assert erle(echo[-16000:], out[-16000:]) > 10.0
    with pytest.raises(ValueError):
        aec.process(np.zeros(100), np.zeros(100))
