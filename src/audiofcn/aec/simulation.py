"""Acoustic echo simulation after the ICASSP AEC Challenge synthetic recipe.

The far-end signal ``x`` is what the loudspeaker is asked to play (the reference the canceller
gets). The loudspeaker may distort it (hard clipping then a sigmoid, as in the challenge); the
room carries it to the microphone through an impulse response (measured, passed in, or
simulated with ``pyroomacoustics``). The microphone records::

    mic = near + echo + noise

``near`` is the near-end talker at the microphone, the training target (with the noise, the
target of echo-only cancellation). Levels are set from mean powers over the clip:
``SER = 10 log10(P_near / P_echo)``, ``SNR = 10 log10(P_near / P_noise)``; when there is no
near-end talker (far-end single talk) the nominal near-end level stands in for ``P_near``, so
the echo and noise have the levels they would have in double talk.

Scenarios: ``far_single`` (far-end single talk), ``near_single`` (near-end single talk, silent
reference), ``double_talk`` and ``echo_path_change`` (far-end single talk whose impulse
response switches to another room position partway through). Everything is seeded: the same
``seed`` gives the same example.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCENARIOS = ("far_single", "near_single", "double_talk", "echo_path_change")


@dataclass
class AECSimConfig:
    sample_rate: int = 16000
    duration: float = 4.0  # seconds per example
    ser_db: tuple[float, float] = (-10.0, 10.0)  # signal-to-echo ratio range
    snr_db: tuple[float, float] = (0.0, 40.0)  # signal-to-noise ratio range
    near_dbfs: tuple[float, float] = (-35.0, -20.0)  # near-end RMS level
    ref_dbfs: tuple[float, float] = (-35.0, -20.0)  # far-end reference RMS level
    nonlinear_prob: float = 0.8  # share of examples with loudspeaker distortion
    scenario_probs: dict[str, float] = field(default_factory=lambda: {
        "far_single": 0.25, "near_single": 0.15, "double_talk": 0.45,
        "echo_path_change": 0.15})
    room_rir_prob: float = 0.5  # simulated (pyroomacoustics) vs measured RIRs when both given
    near_reverb_prob: float = 0.0  # reverberate the near-end talker too (target stays wet)
    # Bulk delay (ms) of the echo path: playback/capture buffering in front of the room.
    # (0, 0): none (the original recipe; its random stream is unchanged). Otherwise drawn
    # log-uniformly from the range, so short delays (the usual case) stay the most common.
    echo_delay_ms: tuple[float, float] = (0.0, 0.0)


@dataclass
class AECExample:
    """One simulated clip; every signal is float32 ``(time,)`` at ``sample_rate``."""

    mic: np.ndarray
    ref: np.ndarray
    near: np.ndarray
    echo: np.ndarray
    noise: np.ndarray
    scenario: str
    ser_db: float
    snr_db: float
    meta: dict[str, Any] = field(default_factory=dict)


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, dtype=np.float64) ** 2))


def db(ratio: float) -> float:
    return 10.0 * float(np.log10(max(ratio, 1e-20)))


def loudspeaker_nonlinearity(x: np.ndarray, clip_ratio: float = 0.8,
                             kind: str = "clip_sigmoid", sample_rate: int = 16000) -> np.ndarray:
    """AEC-Challenge loudspeaker model: hard clipping at ``clip_ratio * max|x|``, then the
    memoryless sigmoid ``4 (2 / (1 + exp(-a b)) - 1)`` of ``b = 1.5 x - 0.3 x^2`` with
    ``a = 4`` for ``b > 0`` and ``0.5`` otherwise (asymmetric, like a real driver), then a
    60 Hz high-pass. ``kind``: "clip", "sigmoid" or "clip_sigmoid". Returned at the input's
    RMS level."""
    x = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(x))) or 1.0
    y = x / peak  # the sigmoid is defined for a full-scale signal
    if kind in ("clip", "clip_sigmoid"):
        y = np.clip(y, -clip_ratio, clip_ratio)
    if kind in ("sigmoid", "clip_sigmoid"):
        b = 1.5 * y - 0.3 * y ** 2
        a = np.where(b > 0, 4.0, 0.5)
        y = 4.0 * (2.0 / (1.0 + np.exp(-a * b)) - 1.0)
    elif kind != "clip":
        raise ValueError(f"unknown nonlinearity {kind!r}")
    # The asymmetric curve adds a DC offset and rumble that no loudspeaker radiates (and no
    # linear echo path from the reference could model): high-pass at 60 Hz.
    from scipy.signal import butter, sosfilt

    y = sosfilt(butter(2, 60.0, "highpass", fs=sample_rate, output="sos"), y - y.mean())
    rx, ry = np.sqrt(power(x)), np.sqrt(power(y))
    return (y * (rx / ry if ry > 0 else 0.0)).astype(np.float32)


def simulate_rir(rng: np.random.Generator, sample_rate: int = 16000,
                 rt60: tuple[float, float] = (0.15, 0.6), n_rirs: int = 1,
                 max_length: float = 0.5) -> list[np.ndarray]:
    """Impulse responses from one random shoebox room (``pyroomacoustics`` image method):
    ``n_rirs`` loudspeaker positions to one microphone (for echo path changes), each cut to
    ``max_length`` seconds."""
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.5)])
    t60 = rng.uniform(*rt60)
    try:
        absorption, max_order = pra.inverse_sabine(t60, dims)
    except ValueError:  # room too large for so short a reverberation time
        absorption, max_order = 0.9, 3
    room = pra.ShoeBox(dims, fs=sample_rate, materials=pra.Material(absorption),
                       max_order=min(max_order, 12))
    mic = dims * rng.uniform(0.3, 0.7, 3)
    for _ in range(n_rirs):  # a laptop/phone: loudspeaker 5-60 cm from the microphone
        offset = rng.normal(size=3)
        offset *= rng.uniform(0.05, 0.6) / np.linalg.norm(offset)
        room.add_source(np.clip(mic + offset, 0.1, dims - 0.1))
    room.add_microphone(mic)
    room.compute_rir()
    n = int(max_length * sample_rate)
    return [np.asarray(room.rir[0][i][:n], dtype=np.float32) for i in range(n_rirs)]


def _convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    from scipy.signal import fftconvolve

    return fftconvolve(x, h)[: len(x)].astype(np.float32)


def _fill(rng: np.random.Generator, pool: Sequence[np.ndarray], n: int,
          gap: tuple[float, float] = (0.1, 0.6), sample_rate: int = 16000) -> np.ndarray:
    """Concatenate random utterances (with short pauses) from ``pool`` to ``n`` samples,
    starting at a random offset of a random utterance."""
    out = np.zeros(0, dtype=np.float32)
    first = True
    while len(out) < n:
        utt = np.asarray(pool[rng.integers(len(pool))], dtype=np.float32)
        if first:
            utt = utt[rng.integers(0, max(1, len(utt) // 2)):]
            first = False
        pause = np.zeros(int(rng.uniform(*gap) * sample_rate), dtype=np.float32)
        out = np.concatenate([out, utt, pause])
    return out[:n]


def _noise_excerpt(rng: np.random.Generator, pool: Sequence[np.ndarray], n: int) -> np.ndarray:
    if not pool:  # no recorded noise: white plus low-passed (brown-ish) noise
        from scipy.signal import lfilter

        w = rng.standard_normal(n)
        return (0.3 * w + lfilter([1.0], [1.0, -0.95], w)).astype(np.float32)
    src = np.asarray(pool[rng.integers(len(pool))], dtype=np.float32)
    if len(src) < n:
        src = np.tile(src, n // max(1, len(src)) + 1)
    start = rng.integers(0, len(src) - n + 1)
    return src[start:start + n].copy()


def _scale_to(x: np.ndarray, target_power: float) -> np.ndarray:
    p = power(x)
    return (x * np.sqrt(target_power / p)).astype(np.float32) if p > 0 else x


def simulate_echo(near: np.ndarray | None, far: np.ndarray | None, noise: np.ndarray,
                  rirs: Sequence[np.ndarray], *, ser_db: float, snr_db: float,
                  near_dbfs: float = -26.0, ref_dbfs: float = -26.0,
                  nonlinearity: str | None = None, path_change_at: int | None = None,
                  near_rir: np.ndarray | None = None, scenario: str = "custom",
                  peak_limit: float = 0.99) -> AECExample:
    """Mix one example from given signals (all ``(time,)`` float arrays, same length).

    ``near=None``: far-end single talk; ``far=None``: near-end single talk (silent reference,
    no echo). ``rirs[0]`` is the echo path; with ``path_change_at`` the path switches to
    ``rirs[1]`` at that sample. The echo is scaled to ``ser_db`` and the noise to ``snr_db``
    (see the module docstring); if the microphone would clip, all parts are scaled together,
    which keeps both ratios.
    """
    n = len(noise)
    nominal = 10.0 ** (near_dbfs / 10.0)  # power at near_dbfs (RMS in dBFS: 20 log10 rms)
    if near is not None:
        near = np.asarray(near, dtype=np.float32)[:n]
        if near_rir is not None:
            near = _convolve(near, near_rir)
        near = _scale_to(near, nominal)
        p_near = power(near)
    else:
        near, p_near = np.zeros(n, dtype=np.float32), nominal
    if far is not None:
        ref = _scale_to(np.asarray(far, dtype=np.float32)[:n], 10.0 ** (ref_dbfs / 10.0))
        played = loudspeaker_nonlinearity(ref, kind=nonlinearity) if nonlinearity else ref
        # (the default 16 kHz high-pass corner is far below any band of interest at 8-48 kHz)
        echo = _convolve(played, rirs[0])
        if path_change_at is not None:
            if len(rirs) < 2:
                raise ValueError("an echo path change needs two impulse responses")
            echo[path_change_at:] = _convolve(played, rirs[1])[path_change_at:]
        echo = _scale_to(echo, p_near / 10.0 ** (ser_db / 10.0))
    else:
        ref = np.zeros(n, dtype=np.float32)
        echo = np.zeros(n, dtype=np.float32)
    noise = _scale_to(np.asarray(noise, dtype=np.float32)[:n], p_near / 10.0 ** (snr_db / 10.0))
    mic = near + echo + noise
    peak = float(np.max(np.abs(mic)))
    if peak > peak_limit:
        g = np.float32(peak_limit / peak)
        near, echo, noise, mic = near * g, echo * g, noise * g, near * g + echo * g + noise * g
    return AECExample(mic=mic.astype(np.float32), ref=ref.astype(np.float32),
                      near=near.astype(np.float32), echo=echo.astype(np.float32),
                      noise=noise.astype(np.float32), scenario=scenario, ser_db=float(ser_db),
                      snr_db=float(snr_db),
                      meta={"nonlinearity": nonlinearity, "path_change_at": path_change_at})


def simulate_example(seed: int, near_pool: Sequence[np.ndarray], far_pool: Sequence[np.ndarray],
                     noise_pool: Sequence[np.ndarray] = (),
                     rir_pool: Sequence[np.ndarray] = (), config: AECSimConfig | None = None,
                     scenario: str | None = None, simulate_rooms: bool = True) -> AECExample:
    """One random example, entirely determined by ``seed``.

    Pools hold ``(time,)`` float arrays at ``config.sample_rate``: near-end and far-end
    utterances (use different talkers), noise recordings (empty: synthetic noise) and measured
    RIRs. ``simulate_rooms`` lets ``pyroomacoustics`` make rooms (needed if ``rir_pool`` is
    empty); otherwise RIRs come from ``rir_pool``.
    """
    cfg = config or AECSimConfig()
    rng = np.random.default_rng(seed)
    if scenario is None:
        names = list(cfg.scenario_probs)
        p = np.array([cfg.scenario_probs[k] for k in names], dtype=np.float64)
        scenario = names[rng.choice(len(names), p=p / p.sum())]
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {SCENARIOS}")
    n = int(cfg.duration * cfg.sample_rate)
    use_room = simulate_rooms and (not rir_pool or rng.random() < cfg.room_rir_prob)
    if use_room:
        rirs = simulate_rir(rng, cfg.sample_rate, n_rirs=2)
    else:
        if not rir_pool:
            raise ValueError("no impulse responses: pass rir_pool or simulate_rooms=True")
        i, j = rng.choice(len(rir_pool), size=2, replace=len(rir_pool) < 2)
        rirs = [rir_pool[i], rir_pool[j] if j != i else _perturb(rir_pool[i], rng)]
    has_near = scenario in ("near_single", "double_talk")
    has_far = scenario != "near_single"
    near = _fill(rng, near_pool, n, sample_rate=cfg.sample_rate) if has_near else None
    far = _fill(rng, far_pool, n, sample_rate=cfg.sample_rate) if has_far else None
    noise = _noise_excerpt(rng, noise_pool, n)
    nonlin = None
    if rng.random() < cfg.nonlinear_prob:
        nonlin = ["clip", "sigmoid", "clip_sigmoid"][rng.integers(3)]
    change = int(rng.uniform(0.35, 0.65) * n) if scenario == "echo_path_change" else None
    near_rir = None
    if near is not None and rng.random() < cfg.near_reverb_prob and use_room:
        near_rir = simulate_rir(rng, cfg.sample_rate)[0]
    delay = 0
    if cfg.echo_delay_ms[1] > 0:  # its own stream: every other draw is the delay-free one
        lo, hi = max(cfg.echo_delay_ms[0], 0.1), cfg.echo_delay_ms[1]
        u = np.random.default_rng([seed, 2]).uniform(np.log(lo), np.log(hi))
        delay = int(round(np.exp(u) * cfg.sample_rate / 1000))
        rirs = [np.concatenate([np.zeros(delay, np.float32), np.asarray(r, np.float32)])
                for r in rirs]
    ex = simulate_echo(near, far, noise, rirs, ser_db=float(rng.uniform(*cfg.ser_db)),
                       snr_db=float(rng.uniform(*cfg.snr_db)),
                       near_dbfs=float(rng.uniform(*cfg.near_dbfs)),
                       ref_dbfs=float(rng.uniform(*cfg.ref_dbfs)), nonlinearity=nonlin,
                       path_change_at=change, near_rir=near_rir, scenario=scenario)
    ex.meta.update({"seed": seed, "simulated_room": use_room, "echo_delay": delay})
    return ex


def _perturb(rir: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second echo path from one measured RIR: a few samples of extra delay and a changed
    reverberant tail (the loudspeaker or a person moved)."""
    shift = int(rng.integers(3, 40))
    out = np.concatenate([np.zeros(shift, dtype=np.float32), rir])[: len(rir)]
    tail = rng.standard_normal(len(out)).astype(np.float32) * np.abs(out).mean()
    return (out * rng.uniform(0.6, 1.0) + 0.3 * tail * np.exp(-np.arange(len(out)) /
                                                              (0.05 * 16000))).astype(np.float32)


class AECSimDataset:
    """Map-style dataset of simulated examples for :class:`audiofcn.train.Trainer`.

    Item ``i`` is ``simulate_example(seed + i, ...)`` (the same every epoch; use a large
    ``length`` for variety) as a dict of float32 tensors ``mic``, ``ref``, ``near``, ``noise``
    and ``echo``, each ``(time,)``.
    """

    def __init__(self, length: int, seed: int, near_pool: Sequence[np.ndarray],
                 far_pool: Sequence[np.ndarray], noise_pool: Sequence[np.ndarray] = (),
                 rir_pool: Sequence[np.ndarray] = (), config: AECSimConfig | None = None,
                 simulate_rooms: bool = True) -> None:
        self.length, self.seed = length, seed
        self.pools = (near_pool, far_pool, noise_pool, rir_pool)
        self.config = config or AECSimConfig()
        self.simulate_rooms = simulate_rooms

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if not 0 <= i < self.length:
            raise IndexError(i)
        ex = simulate_example(self.seed + i, *self.pools, config=self.config,
                              simulate_rooms=self.simulate_rooms)
        return {k: torch.from_numpy(getattr(ex, k)) for k in
                ("mic", "ref", "near", "noise", "echo")}


class TalkerAECSimDataset(AECSimDataset):
    """:class:`AECSimDataset` whose near-end and far-end talkers are always different people.

    ``talkers`` holds one list of utterances per speaker. Item ``i`` draws (seeded by
    ``seed + i``) a near-end speaker uniformly from those allowed as near-end
    (``near_only`` or ``both``) and a different far-end speaker uniformly from those allowed
    as far-end (``far_only`` or ``both``), so every speaker weighs the same however many
    utterances it has. Drawing both ends from one pooled list instead lets a speaker with a
    single recording talk to itself, in double talk the same recording at two offsets.
    """

    def __init__(self, length: int, seed: int, talkers: Sequence[Sequence[np.ndarray]],
                 noise_pool: Sequence[np.ndarray] = (), rir_pool: Sequence[np.ndarray] = (),
                 config: AECSimConfig | None = None, simulate_rooms: bool = True,
                 roles: Sequence[str] | None = None) -> None:
        roles = list(roles) if roles is not None else ["both"] * len(talkers)
        if len(roles) != len(talkers) or set(roles) - {"both", "near_only", "far_only"}:
            raise ValueError("roles: one of 'both', 'near_only', 'far_only' per talker")
        self.near_ids = [i for i, r in enumerate(roles) if r != "far_only"]
        self.far_ids = [i for i, r in enumerate(roles) if r != "near_only"]
        if not any(j != i for i in self.near_ids for j in self.far_ids):
            raise ValueError("need at least two talkers, one near-end and another far-end")
        super().__init__(length, seed, [], [], noise_pool, rir_pool, config, simulate_rooms)
        self.talkers = [list(t) for t in talkers]

    def pick(self, i: int) -> tuple[int, int]:
        """(near-end speaker, far-end speaker) of item ``i``: always two different ones."""
        rng = np.random.default_rng([self.seed + i, 1])  # independent of the mixing stream
        near = self.near_ids[rng.integers(len(self.near_ids))]
        others = [j for j in self.far_ids if j != near]
        return near, others[rng.integers(len(others))]

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        if not 0 <= i < self.length:
            raise IndexError(i)
        near, far = self.pick(i)
        _, _, noise, rirs = self.pools
        ex = simulate_example(self.seed + i, self.talkers[near], self.talkers[far], noise, rirs,
                              config=self.config, simulate_rooms=self.simulate_rooms)
        return {k: torch.from_numpy(getattr(ex, k)) for k in
                ("mic", "ref", "near", "noise", "echo")}
