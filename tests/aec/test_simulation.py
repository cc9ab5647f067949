"""AEC simulation: mic = near + echo + noise at the requested SER/SNR, scenarios, seeding."""

import numpy as np
import pytest

from audiofcn.aec.simulation import (
    SCENARIOS,
    AECSimConfig,
    AECSimDataset,
    TalkerAECSimDataset,
    db,
    loudspeaker_nonlinearity,
    power,
    simulate_echo,
    simulate_example,
)

SR = 16000


def _talker(seed: int, n: int = 24000) -> np.ndarray:
    """Speech-like test signal: harmonic tone with a syllable-rate envelope and pauses."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220)
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t), 0, None)
    return (0.1 * tone * env).astype(np.float32)


POOL_A = [_talker(i) for i in range(3)]
POOL_B = [_talker(10 + i) for i in range(3)]
RIRS = [np.exp(-np.arange(800) / 150.0).astype(np.float32)
        * np.random.default_rng(i).standard_normal(800).astype(np.float32) for i in range(3)]
for r in RIRS:
    r[:20] = 0.0  # propagation delay


@pytest.mark.parametrize("ser,snr", [(-10.0, 0.0), (0.0, 20.0), (10.0, 40.0)])
def test_mixture_is_sum_at_requested_levels(ser, snr):
    n = 32000
    noise = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    ex = simulate_echo(np.tile(POOL_A[0], 2)[:n], np.tile(POOL_B[0], 2)[:n], noise, RIRS,
                       ser_db=ser, snr_db=snr, near_dbfs=-30, nonlinearity="clip_sigmoid")
    np.testing.assert_allclose(ex.mic, ex.near + ex.echo + ex.noise, atol=1e-6)
    assert db(power(ex.near) / power(ex.echo)) == pytest.approx(ser, abs=0.01)
    assert db(power(ex.near) / power(ex.noise)) == pytest.approx(snr, abs=0.01)
    assert np.abs(ex.mic).max() <= 0.99


def test_loud_mix_is_scaled_together_keeping_ratios():
    n = 16000
    noise = np.random.default_rng(1).standard_normal(n).astype(np.float32)
    ex = simulate_echo(POOL_A[1][:n], POOL_B[1][:n], noise, RIRS, ser_db=-10, snr_db=0,
                       near_dbfs=-3)
    assert np.abs(ex.mic).max() == pytest.approx(0.99, abs=1e-4)
    assert db(power(ex.near) / power(ex.echo)) == pytest.approx(-10, abs=0.01)


def test_echo_is_the_reference_through_the_path():
    n = 16000
    noise = np.zeros(n, dtype=np.float32) + 1e-6
    ex = simulate_echo(None, POOL_B[0][:n], noise, RIRS, ser_db=0, snr_db=40)
    expected = np.convolve(ex.ref, RIRS[0])[:n]
    g = np.dot(ex.echo, expected) / np.dot(expected, expected)
    np.testing.assert_allclose(ex.echo, g * expected, atol=1e-5)
    assert np.all(ex.near == 0)


def test_path_change_switches_impulse_response():
    n = 16000
    ex = simulate_echo(None, POOL_B[2][:n], np.ones(n, np.float32), RIRS, ser_db=0, snr_db=40,
                       path_change_at=8000)
    a = np.convolve(ex.ref, RIRS[0])[:n]
    b = np.convolve(ex.ref, RIRS[1])[:n]
    g = np.dot(ex.echo[:8000], a[:8000]) / np.dot(a[:8000], a[:8000])
    np.testing.assert_allclose(ex.echo[:8000], g * a[:8000], atol=1e-5)
    np.testing.assert_allclose(ex.echo[8000:], g * b[8000:], atol=1e-5)


def test_nonlinearity_distorts_but_keeps_level():
    x = POOL_B[0]
    for kind in ("clip", "sigmoid", "clip_sigmoid"):
        y = loudspeaker_nonlinearity(x, kind=kind)
        assert power(y) == pytest.approx(power(x), rel=1e-3)
        assert np.abs(y / np.sqrt(power(y)) - x / np.sqrt(power(x))).max() > 0.05
    with pytest.raises(ValueError):
        loudspeaker_nonlinearity(x, kind="tube")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenarios_are_seeded_and_consistent(scenario):
    cfg = AECSimConfig(duration=1.0)
    a = simulate_example(7, POOL_A, POOL_B, [], RIRS, cfg, scenario, simulate_rooms=False)
    b = simulate_example(7, POOL_A, POOL_B, [], RIRS, cfg, scenario, simulate_rooms=False)
    c = simulate_example(8, POOL_A, POOL_B, [], RIRS, cfg, scenario, simulate_rooms=False)
    np.testing.assert_array_equal(a.mic, b.mic)
    assert not np.array_equal(a.mic, c.mic)
    assert a.mic.shape == (SR,) and a.scenario == scenario
    assert cfg.ser_db[0] <= a.ser_db <= cfg.ser_db[1]
    assert cfg.snr_db[0] <= a.snr_db <= cfg.snr_db[1]
    np.testing.assert_allclose(a.mic, a.near + a.echo + a.noise, atol=1e-6)
    assert (power(a.near) > 0) == (scenario in ("near_single", "double_talk"))
    assert (power(a.echo) > 0) == (scenario != "near_single")
    assert (a.meta["path_change_at"] is not None) == (scenario == "echo_path_change")


def test_simulated_room_and_dataset():
    pytest.importorskip("pyroomacoustics")
    cfg = AECSimConfig(duration=0.5, room_rir_prob=1.0)
    ds = AECSimDataset(3, 100, POOL_A, POOL_B, config=cfg)
    item = ds[1]
    assert set(item) == {"mic", "ref", "near", "noise", "echo"}
    assert item["mic"].shape == (8000,)
    again = ds[1]
    assert np.array_equal(item["mic"].numpy(), again["mic"].numpy())
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError):
        simulate_example(0, POOL_A, POOL_B, scenario="echo_path_change", simulate_rooms=False)


def test_talker_dataset_never_pairs_a_speaker_with_itself():
    # three talkers with one utterance each: a pooled draw pairs a talker with itself (in
    # double talk, the same recording at two offsets) about a third of the time
    talkers = [[_talker(20 + i, 8000)] for i in range(3)]
    cfg = AECSimConfig(duration=0.25)
    ds = TalkerAECSimDataset(60, 7, talkers, rir_pool=RIRS, config=cfg, simulate_rooms=False,
                             roles=["both", "both", "near_only"])
    pairs = [ds.pick(i) for i in range(60)]
    assert all(near != far for near, far in pairs)
    assert all(far != 2 for _, far in pairs)  # near-end-only talker never plays as far end
    assert {near for near, _ in pairs} == {0, 1, 2}
    assert ds.pick(5) == ds.pick(5)
    item = ds[3]
    assert set(item) == {"mic", "ref", "near", "noise", "echo"} and item["mic"].shape == (4000,)
    np.testing.assert_array_equal(item["mic"].numpy(), ds[3]["mic"].numpy())
    with pytest.raises(ValueError):  # one near-end talker that is also the only far end
        TalkerAECSimDataset(4, 0, talkers[:1], rir_pool=RIRS, simulate_rooms=False)
    with pytest.raises(ValueError):
        TalkerAECSimDataset(4, 0, talkers, rir_pool=RIRS, roles=["both", "x", "both"])


def test_echo_delay_shifts_the_echo_and_leaves_delay_free_configs_unchanged():
    base = AECSimConfig(duration=1.0, nonlinear_prob=0.0, snr_db=(80.0, 80.0))
    delayed = AECSimConfig(duration=1.0, nonlinear_prob=0.0, snr_db=(80.0, 80.0),
                           echo_delay_ms=(10.0, 500.0))
    a = simulate_example(3, POOL_A, POOL_B, rir_pool=RIRS, config=base,
                         scenario="far_single", simulate_rooms=False)
    b = simulate_example(3, POOL_A, POOL_B, rir_pool=RIRS, config=delayed,
                         scenario="far_single", simulate_rooms=False)
    d = b.meta["echo_delay"]
    assert a.meta["echo_delay"] == 0 and 160 <= d <= 8000
    np.testing.assert_array_equal(a.ref, b.ref)  # every earlier draw is the same
    assert np.abs(b.echo[:d]).max() < 1e-5 * np.abs(b.echo).max()  # FFT rounding only
    # the same echo, d samples later (each scaled to the same level over the clip)
    shifted = a.echo[:len(a.echo) - d]
    corr = np.dot(b.echo[d:], shifted) / np.sqrt(power(b.echo[d:]) * power(shifted)) / len(shifted)
    assert corr > 0.999
    delays = [simulate_example(s, POOL_A, POOL_B, rir_pool=RIRS, config=delayed,
                               scenario="far_single", simulate_rooms=False).meta["echo_delay"]
              for s in range(40)]
    assert min(delays) >= 160 and max(delays) <= 8000
    assert np.median(delays) < 2400  # log-uniform: short delays are the common case
