"""Simulated conversations for evaluation (after Fujita et al.'s EEND mixtures, with turns).

Turns are single-speaker utterances taken in a random order with no speaker talking twice in a
row, levels within +-``level_jitter_db`` of each other, separated by exponential pauses (mean
``pause_mean`` s, at least ``min_pause``). With ``overlap_prob`` > 0 a turn starts, with that
probability, ``overlap`` seconds (uniform range) before the previous turn ends. The reference is
each utterance's placed interval (the utterances are trimmed to their speech first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiofcn.diarization.pipeline import Segment


@dataclass
class SimConfig:
    sample_rate: int = 16000
    pause_mean: float = 0.6
    min_pause: float = 0.2
    overlap_prob: float = 0.0
    overlap: tuple[float, float] = (0.3, 1.5)
    level_jitter_db: float = 3.0
    noise_dbfs: float = -60.0


def order_turns(speakers: list[int], rng: np.random.Generator) -> list[int]:
    """A random order of the given speaker ids (with repeats) where no two neighbours are equal,
    when one exists (greedy: always draw from the speakers with the most turns left)."""
    left = {s: speakers.count(s) for s in set(speakers)}
    out: list[int] = []
    while any(left.values()):
        cands = [s for s, n in left.items() if n and (not out or s != out[-1])]
        if not cands:
            cands = [s for s, n in left.items() if n]
        top = max(left[s] for s in cands)
        pool = [s for s in cands if left[s] >= top - 1]
        s = pool[int(rng.integers(len(pool)))]
        out.append(s)
        left[s] -= 1
    return out


def simulate(utterances: list[tuple[str, np.ndarray]], rng: np.random.Generator,
             config: SimConfig | None = None) -> tuple[np.ndarray, list[Segment]]:
    """``[(speaker, (time,) audio)]`` -> ``(mixture (time,), reference segments)``."""
    c = config or SimConfig()
    names = sorted({s for s, _ in utterances})
    by_spk = {n: [a for s, a in utterances if s == n] for n in names}
    for v in by_spk.values():
        rng.shuffle(v)  # type: ignore[arg-type]
    order = order_turns([names.index(s) for s, _ in utterances], rng)
    placed: list[tuple[int, str, np.ndarray]] = []
    t = int(0.5 * c.sample_rate)
    prev_end = t
    for k in order:
        name = names[k]
        a = by_spk[name].pop()
        a = a / (np.sqrt(np.mean(a ** 2)) + 1e-9) * 10 ** ((-23 + rng.uniform(
            -c.level_jitter_db, c.level_jitter_db)) / 20)
        if placed and rng.random() < c.overlap_prob:
            start = prev_end - int(rng.uniform(*c.overlap) * c.sample_rate)
            start = max(start, placed[-1][0] + int(0.3 * c.sample_rate))
        else:
            start = prev_end + int((c.min_pause + rng.exponential(c.pause_mean))
                                   * c.sample_rate)
        placed.append((start, name, a))
        prev_end = max(prev_end, start + len(a))
    total = prev_end + int(0.5 * c.sample_rate)
    mix = rng.standard_normal(total) * 10 ** (c.noise_dbfs / 20)
    ref = []
    for start, name, a in placed:
        mix[start:start + len(a)] += a
        ref.append(Segment(start / c.sample_rate, (start + len(a)) / c.sample_rate, name))
    peak = np.abs(mix).max()
    if peak > 0.99:
        mix *= 0.99 / peak
    return mix.astype(np.float32), sorted(ref, key=lambda s: s.start)


def cut_turns(utterances: list[tuple[str, np.ndarray]], rng: np.random.Generator,
              turn: tuple[float, float], sample_rate: int = 16000, floor_db: float = 30.0,
              min_speech: float = 0.3) -> list[tuple[str, np.ndarray]]:
    """Cut each utterance into consecutive turns of ``turn`` seconds (uniform range), for
    conversations with shorter, more interleaved turns than whole utterances (meeting-like).

    Each piece is trimmed to its speech (25-ms frames within ``floor_db`` of the utterance's
    loudest frame), so a cut that lands in a pause does not put silence into the reference;
    pieces with under ``min_speech`` seconds left are dropped.
    """
    lo, hi = turn
    if not 0 < lo <= hi:
        raise ValueError(f"turn range must satisfy 0 < lo <= hi, got {turn}")
    hop = int(0.025 * sample_rate)
    out = []
    for name, a in utterances:
        n = max(1, len(a) // hop)
        db = 10 * np.log10(np.array([np.mean(a[i * hop:(i + 1) * hop] ** 2)
                                     for i in range(n)]) + 1e-12)
        loud = (db > db.max() - floor_db) & (db > -100.0)  # digital silence is never speech
        s = 0
        while s < len(a):
            e = min(len(a), s + int(rng.uniform(lo, hi) * sample_rate))
            base = s // hop
            on = np.nonzero(loud[base:-(-e // hop)])[0]
            if len(on):
                a0, a1 = max(s, (base + on[0]) * hop), min(e, (base + on[-1] + 1) * hop)
                if a1 - a0 >= min_speech * sample_rate:
                    out.append((name, a[a0:a1]))
            s = e
    return out
