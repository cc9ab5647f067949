"""The linear stage (partitioned-block frequency-domain Kalman filter)."""

import numpy as np
import pytest
from scipy.signal import lfilter

from audiofcn.aec.linear import KalmanConfig, KalmanEchoFilter, estimate_delay, kalman_cancel

SR = 16000


def speechlike(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Coloured noise with a syllable-rate envelope and pauses: a stand-in for speech."""
    n = int(seconds * SR)
    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n))
    env = np.repeat(rng.uniform(0.05, 1.0, n // 1600 + 1), 1600)[:n]
    return (0.05 * x * env / np.std(x)).astype(np.float64)


def echo_path(rng: np.random.Generator, delay: int, length: int = 2000) -> np.ndarray:
    h = np.zeros(delay + length)
    decay = np.exp(-np.arange(length) / (0.15 * length))
    h[delay:] = 0.6 * rng.standard_normal(length) * decay / np.sqrt(np.sum(decay ** 2))
    return h


def erle_db(echo: np.ndarray, residual: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(echo ** 2) / np.mean(residual ** 2)))


@pytest.mark.parametrize("delay", [0, 2400])  # 0 and 150 ms bulk delay, inside the 260 ms tail
def test_converges_on_a_simulated_echo_path(delay: int) -> None:
    rng = np.random.default_rng(0)
    ref = speechlike(rng, 6.0)
    echo = np.convolve(ref, echo_path(rng, delay))[:len(ref)]
    noise = 1e-4 * rng.standard_normal(len(ref))  # -80 dBFS microphone noise
    out, est = kalman_cancel(echo + noise, ref)
    last = slice(4 * SR, None)  # after 4 s
    assert erle_db(echo[last], out[last] - noise[last]) > 25.0
    assert erle_db(echo[:SR // 2], out[:SR // 2] - noise[:SR // 2]) < 25.0  # it did adapt
    np.testing.assert_allclose(out + est, (echo + noise).astype(np.float32), atol=1e-5)


def test_bulk_delay_beyond_the_tail_needs_the_delay_option() -> None:
    rng = np.random.default_rng(1)
    ref = speechlike(rng, 6.0)
    delay = 8000  # 500 ms: longer than the 260 ms filter
    echo = np.convolve(ref, echo_path(rng, delay))[:len(ref)]
    last = slice(4 * SR, None)
    plain, _ = kalman_cancel(echo, ref)
    assert erle_db(echo[last], plain[last]) < 6.0
    found = estimate_delay(echo, ref, max_delay=SR)
    assert abs(found - delay) < 160
    aligned, _ = kalman_cancel(echo, ref, KalmanConfig(delay=found - 160))
    assert erle_db(echo[last], aligned[last]) > 25.0


def test_double_talk_does_not_make_it_diverge() -> None:
    rng = np.random.default_rng(2)
    ref = speechlike(rng, 8.0)
    echo = np.convolve(ref, echo_path(rng, 400))[:len(ref)]
    near = np.zeros_like(ref)
    near[4 * SR:7 * SR] = 3.0 * speechlike(rng, 3.0)  # near end 10 dB above the echo
    # no DC notch here, so that the output's near end is exactly ``near``
    out, _ = kalman_cancel(echo + near, ref, KalmanConfig(dc_notch=0.0))
    dt = slice(4 * SR, 7 * SR)
    residual = out[dt] - near[dt]
    # the echo is still cancelled while the near end talks (speexdsp's linear filter: about
    # -10 dB here, i.e. it adds echo), and the filter recovers afterwards
    assert erle_db(echo[dt], residual) > 6.0
    after = slice(7 * SR, None)
    assert erle_db(echo[after], out[after]) > 15.0


def test_streaming_equals_offline_and_is_causal() -> None:
    rng = np.random.default_rng(3)
    ref = speechlike(rng, 2.0)
    mic = np.convolve(ref, echo_path(rng, 300))[:len(ref)] + 0.01 * speechlike(rng, 2.0)
    offline, est = kalman_cancel(mic, ref)
    f = KalmanEchoFilter()
    pieces, i = [], 0
    for hops in [1, 3, 2, 7, 1, 5] * 100:
        if i >= len(mic):
            break
        n = hops * 160
        pieces.append(f.process(mic[i:i + n], ref[i:i + n])[0])
        i += n
    np.testing.assert_allclose(np.concatenate(pieces), offline, atol=1e-6)
    # causal: changing the future changes nothing before it
    cut = 16000
    mic2, ref2 = mic.copy(), ref.copy()
    mic2[cut:] = rng.standard_normal(len(mic) - cut)
    ref2[cut:] = 0.0
    out2, _ = kalman_cancel(mic2, ref2)
    np.testing.assert_array_equal(out2[:cut], offline[:cut])


def test_bad_input_is_refused() -> None:
    f = KalmanEchoFilter()
    with pytest.raises(ValueError, match="multiple of the hop"):
        f.process(np.zeros(100), np.zeros(100))
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        kalman_cancel(np.zeros(320), np.zeros(160))


def test_fused_kernels_equal_the_numpy_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The numba kernels (default) and their numpy versions (``AUDIOFCN_NO_NUMBA=1``) give
    the same linear output and echo estimate, through convergence, double talk and the
    foreground/background switches."""
    from audiofcn.aec import kalman_kernels as k

    if not k.AVAILABLE:
        pytest.skip("numba missing or AUDIOFCN_NO_NUMBA set: only the numpy path runs")
    rng = np.random.default_rng(5)
    ref = speechlike(rng, 3.0)
    near = np.zeros_like(ref)
    near[SR:2 * SR] = speechlike(rng, 1.0)  # double talk in the middle second
    mic = np.convolve(ref, echo_path(rng, 200))[:len(ref)] + near + 0.003  # with a DC offset
    fused = kalman_cancel(mic, ref)
    for name in ("filter_sums", "kalman_update", "dc_notch"):
        monkeypatch.setattr(k, name, getattr(k, f"{name}_numpy"))
    plain = kalman_cancel(mic, ref)
    for a, b in zip(fused, plain, strict=True):
        assert np.abs(a).max() > 0.01
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
