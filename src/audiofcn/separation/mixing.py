"""Training mixtures made on the fly from separate voice and accompaniment pools.

A real song gives one (voice, accompaniment) pairing; a separator that has only seen those
pairings learns those songs. :class:`RandomMixSegments` instead draws a voice excerpt (sung or
spoken) and an accompaniment excerpt (a song's backing track, rendered music, instrument
recordings) independently, each from a weighted group of sources, and mixes them with

* a random voice-to-accompaniment level (RMS ratio in dB) and a random overall level,
* a random speed change by resampling (pitch and tempo move together, ``± semitones``),
* a random smooth EQ (gains at log-spaced frequencies, interpolated in log-frequency),
* optionally a second accompaniment layer (an instrument over a backing track),
* with probability ``p_pair`` a recorded pair as it was (same speed change and EQ on both stems).

Items are float32 ``(2, segment)`` arrays (row 0 voice, row 1 accompaniment), the layout of
:class:`~audiofcn.separation.training.StemSegments`, so :class:`IBMMaskTask` and the Open-Unmix
peer's task train on them unchanged. :func:`mix_segment` is the pure function (all randomness
from the ``numpy`` generator it is given), so a seed reproduces an item exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from audiofcn.io.audio import resample

_EPS = 1e-5


@dataclass(frozen=True)
class MixConfig:
    """How :func:`mix_segment` draws one training mixture (ranges are uniform)."""

    segment: int = 32000                      # samples per item
    sample_rate: int = 16000
    p_pair: float = 0.3                       # use a recorded (voice, accompaniment) pair
    voice_db: tuple[float, float] = (-6.0, 6.0)   # voice RMS over accompaniment RMS
    level_db: tuple[float, float] = (-30.0, -14.0)  # mixture RMS, dB re full scale
    pair_voice_db: float = 3.0                # ± jitter of a recorded pair's own voice level
    p_speed: float = 0.5
    semitones: float = 3.0                    # speed change within ± this many semitones
    speed_step_hz: int = 200                  # source rates are multiples of this (fast sinc)
    p_eq: float = 0.5
    eq_db: float = 6.0                        # EQ control-point gains within ± this
    eq_points: int = 6
    p_second_accompaniment: float = 0.2
    p_silent_voice: float = 0.05              # accompaniment alone (an all-zero vocal mask)

    def __post_init__(self) -> None:
        for name in ("p_pair", "p_speed", "p_eq", "p_second_accompaniment", "p_silent_voice"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        if self.segment <= 0 or self.semitones < 0 or self.speed_step_hz <= 0:
            raise ValueError("segment and speed_step_hz must be > 0, semitones >= 0")


class SourcePool:
    """Named groups of 1-D float32 sources; a draw picks a group by weight, then a source in
    proportion to its length. Groups with weight 0 or no sources are never drawn."""

    def __init__(self, groups: Mapping[str, Sequence[np.ndarray]],
                 weights: Mapping[str, float]) -> None:
        unknown = {g for g, w in weights.items() if w > 0} - set(groups)
        if unknown:
            raise ValueError(f"weights for groups that have no sources: {sorted(unknown)}")
        self.names = [g for g in groups if weights.get(g, 0.0) > 0 and len(groups[g])]
        if not self.names:
            raise ValueError("no group with sources and a weight > 0")
        self.groups = {g: [np.asarray(s, np.float32).reshape(-1) for s in groups[g]]
                       for g in self.names}
        w = np.array([weights[g] for g in self.names], dtype=np.float64)
        self.group_p = w / w.sum()
        self.source_p = {}
        for g in self.names:
            lengths = np.array([max(len(s), 1) for s in self.groups[g]], dtype=np.float64)
            self.source_p[g] = lengths / lengths.sum()

    def draw(self, rng: np.random.Generator) -> np.ndarray:
        g = self.names[int(rng.choice(len(self.names), p=self.group_p))]
        return self.groups[g][int(rng.choice(len(self.groups[g]), p=self.source_p[g]))]


def excerpt(source: np.ndarray, n: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
    """A random ``n``-sample excerpt (offset, samples); a shorter source lands at a random
    position in zeros."""
    if len(source) >= n:
        start = int(rng.integers(0, len(source) - n + 1))
        return start, source[start:start + n].copy()
    out = np.zeros(n, np.float32)
    at = int(rng.integers(0, n - len(source) + 1))
    out[at:at + len(source)] = source
    return -at, out


def speed_rate(rng: np.random.Generator, cfg: MixConfig) -> int:
    """Source rate for a speed change: the excerpt is read at this rate and resampled to
    ``cfg.sample_rate`` (rate > sample_rate: higher and faster). Equal rates: no change."""
    if cfg.semitones == 0 or rng.random() >= cfg.p_speed:
        return cfg.sample_rate
    ratio = 2.0 ** (rng.uniform(-cfg.semitones, cfg.semitones) / 12.0)
    return int(round(cfg.sample_rate * ratio / cfg.speed_step_hz)) * cfg.speed_step_hz


def apply_speed(x: np.ndarray, rate: int, cfg: MixConfig) -> np.ndarray:
    """Resample ``(..., n_in)`` from ``rate`` to ``cfg.sample_rate`` and cut/pad to the segment."""
    if rate != cfg.sample_rate:
        x = resample(torch.from_numpy(np.ascontiguousarray(x)), rate, cfg.sample_rate).numpy()
    out = np.zeros(x.shape[:-1] + (cfg.segment,), np.float32)
    n = min(cfg.segment, x.shape[-1])
    out[..., :n] = x[..., :n]
    return out


def random_eq(rng: np.random.Generator, cfg: MixConfig) -> np.ndarray | None:
    """Gains for ``rfft`` bins of one segment (``None``: no EQ this time)."""
    if cfg.eq_db == 0 or rng.random() >= cfg.p_eq:
        return None
    nyq = cfg.sample_rate / 2
    points = np.geomspace(60.0, nyq, cfg.eq_points)
    gains_db = rng.uniform(-cfg.eq_db, cfg.eq_db, cfg.eq_points)
    freqs = np.fft.rfftfreq(cfg.segment, 1.0 / cfg.sample_rate)
    db = np.interp(np.log(np.maximum(freqs, 1.0)), np.log(points), gains_db)
    return (10.0 ** (db / 20.0)).astype(np.float32)


def apply_eq(x: np.ndarray, gains: np.ndarray | None) -> np.ndarray:
    if gains is None:
        return x
    return np.fft.irfft(np.fft.rfft(x, axis=-1) * gains, n=x.shape[-1], axis=-1).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _draw_excerpt(pool: SourcePool, rng: np.random.Generator, cfg: MixConfig) -> np.ndarray:
    rate = speed_rate(rng, cfg)
    n_in = int(np.ceil(cfg.segment * rate / cfg.sample_rate)) + 1
    _, x = excerpt(pool.draw(rng), n_in, rng)
    return apply_eq(apply_speed(x, rate, cfg), random_eq(rng, cfg))


def mix_segment(rng: np.random.Generator, voices: SourcePool, accompaniments: SourcePool,
                pairs: Sequence[tuple[np.ndarray, np.ndarray]], cfg: MixConfig) -> np.ndarray:
    """One training item, float32 ``(2, cfg.segment)``: row 0 voice, row 1 accompaniment."""
    if pairs and rng.random() < cfg.p_pair:
        v, a = pairs[int(rng.integers(0, len(pairs)))]
        rate = speed_rate(rng, cfg)
        n_in = int(np.ceil(cfg.segment * rate / cfg.sample_rate)) + 1
        start, _ = excerpt(v, n_in, rng)
        both = np.zeros((2, n_in), np.float32)
        lo, at = max(start, 0), max(-start, 0)
        k = min(n_in - at, len(v) - lo)
        both[0, at:at + k], both[1, at:at + k] = v[lo:lo + k], a[lo:lo + k]
        both = apply_eq(apply_speed(both, rate, cfg), random_eq(rng, cfg))
        voice, acc = both[0], both[1]
        voice = voice * np.float32(10.0 ** (rng.uniform(-cfg.pair_voice_db,
                                                          cfg.pair_voice_db) / 20.0))
    else:
        acc = _draw_excerpt(accompaniments, rng, cfg)
        if rng.random() < cfg.p_second_accompaniment:
            extra = _draw_excerpt(accompaniments, rng, cfg)
            ra, re = _rms(acc), _rms(extra)
            if ra > _EPS and re > _EPS:  # the layer 0-12 dB below the first
                extra = extra * np.float32(ra / re * 10.0 ** (-rng.uniform(0, 12) / 20.0))
            acc = acc + extra
        voice = _draw_excerpt(voices, rng, cfg)
        rv, ra = _rms(voice), _rms(acc)
        if rv > _EPS and ra > _EPS:
            voice = voice * np.float32(ra / rv * 10.0 ** (rng.uniform(*cfg.voice_db) / 20.0))
        if rng.random() < cfg.p_silent_voice:
            voice = np.zeros_like(voice)
    rm = _rms(voice + acc)
    if rm > _EPS:
        g = np.float32(10.0 ** (rng.uniform(*cfg.level_db) / 20.0) / rm)
        voice, acc = voice * g, acc * g
    peak = float(np.max(np.abs(voice + acc)))
    if peak > 1.0:  # keep the mixture a valid signal
        voice, acc = voice / peak, acc / peak
    return np.stack([voice, acc]).astype(np.float32)


class RandomMixSegments(Dataset):
    """``length`` items of :func:`mix_segment` (``(2, segment)`` float32 tensors).

    Training (``fixed=False``): each item's generator is seeded from torch's RNG, so the
    trainer's seed makes a run repeatable. ``fixed=True``: item ``i`` is the same every time
    (seeded by ``(seed, i)``), for validation sets or tests.
    """

    def __init__(self, voices: SourcePool, accompaniments: SourcePool,
                 pairs: Sequence[tuple[np.ndarray, np.ndarray]], cfg: MixConfig, length: int,
                 fixed: bool = False, seed: int = 0) -> None:
        self.voices, self.accompaniments, self.cfg = voices, accompaniments, cfg
        self.pairs = [(np.asarray(v, np.float32), np.asarray(a, np.float32)) for v, a in pairs]
        for v, a in self.pairs:
            if v.shape != a.shape or v.ndim != 1:
                raise ValueError(f"pair shapes differ or are not 1-D: {v.shape} vs {a.shape}")
        self.length, self.fixed, self.seed = length, fixed, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> torch.Tensor:
        if self.fixed:
            rng = np.random.default_rng([self.seed, index])
        else:
            rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        return torch.from_numpy(mix_segment(rng, self.voices, self.accompaniments, self.pairs,
                                            self.cfg))


__all__ = ["MixConfig", "RandomMixSegments", "SourcePool", "apply_eq", "apply_speed", "excerpt",
           "mix_segment", "random_eq", "speed_rate"]
