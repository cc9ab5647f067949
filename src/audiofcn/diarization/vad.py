"""Energy voice-activity detection with hysteresis-free smoothing.

Log energy of 25-ms frames every 10 ms; a frame is speech when it lies above
``low + ratio * (high - low)`` where ``low``/``high`` are the 5th/95th percentiles of the chunk's
frame energies (so the threshold follows the recording level and noise floor), and above
``high - max_range_db``. Runs shorter than ``min_speech`` are dropped, gaps shorter than
``min_silence`` are filled and speech is padded by ``pad``. It is a level detector: loud noise
counts as speech and very quiet speakers next to loud ones may be missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_HOP = 0.01  # seconds per VAD frame


@dataclass
class VADConfig:
    frame_seconds: float = 0.025
    ratio: float = 0.2
    max_range_db: float = 45.0
    min_speech: float = 0.2
    min_silence: float = 0.5
    pad: float = 0.1
    floor_db: float = -70.0  # absolute floor (dBFS): digital silence is never speech


def frame_energies_db(audio: np.ndarray, sr: int, frame_seconds: float) -> np.ndarray:
    """``(time,)`` -> ``(frames,)`` dB energies of frames every 10 ms (centred)."""
    hop = int(round(FRAME_HOP * sr))
    win = int(round(frame_seconds * sr))
    n = int(np.ceil(len(audio) / hop))
    pad = np.pad(audio.astype(np.float64), (win // 2, win))
    c = np.concatenate([[0.0], np.cumsum(pad ** 2)])
    starts = np.arange(n) * hop
    e = (c[starts + win] - c[starts]) / win
    return 10 * np.log10(e + 1e-12)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0], np.nonzero(d == -1)[0], strict=True))


def smooth_mask(mask: np.ndarray, min_speech: int, min_silence: int, pad: int) -> np.ndarray:
    """Fill short gaps, drop short runs, pad runs (all in frames)."""
    out = mask.copy()
    for s, e in _runs(~out):
        if s > 0 and e < len(out) and e - s < min_silence:
            out[s:e] = True
    for s, e in _runs(out):
        if e - s < min_speech:
            out[s:e] = False
    if pad > 0:
        res = out.copy()
        for s, e in _runs(out):
            res[max(0, s - pad):e + pad] = True
        out = res
    return out


def energy_vad(audio: np.ndarray, sr: int, config: VADConfig | None = None) -> np.ndarray:
    """``(time,)`` waveform -> boolean speech mask with one entry per 10 ms."""
    c = config or VADConfig()
    db = frame_energies_db(audio, sr, c.frame_seconds)
    if len(db) == 0:
        return np.zeros(0, dtype=bool)
    low, high = np.percentile(db, [5, 95])
    thr = max(low + c.ratio * (high - low), high - c.max_range_db, c.floor_db)
    f = int(round(1 / FRAME_HOP))
    return smooth_mask(db > thr, int(c.min_speech * f), int(c.min_silence * f), int(c.pad * f))


def mask_to_segments(mask: np.ndarray, offset: float = 0.0) -> list[tuple[float, float]]:
    """Speech mask (10-ms frames) -> ``[(start, end)]`` seconds."""
    return [(offset + s * FRAME_HOP, offset + e * FRAME_HOP) for s, e in _runs(mask)]
