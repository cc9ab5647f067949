"""Echo-cancellation metrics: ERLE, PESQ-WB, STOI, SI-SDR, and a per-scenario summary.

* ERLE (echo return loss enhancement) on far-end single talk:
  ``10 log10(E[mic^2] / E[out^2])`` (higher is better).
* PESQ-WB (``pesq``, 16 kHz), STOI (``pystoi``) and SI-SDR of the output against the clean
  near-end speech, on double talk and near-end single talk.

All functions take 1-D float arrays at the same sample rate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

ERLE_SCENARIOS = ("far_single", "echo_path_change")
QUALITY_SCENARIOS = ("double_talk", "near_single")


def erle(mic: np.ndarray, out: np.ndarray, eps: float = 1e-12) -> float:
    """ERLE in dB over the whole clip."""
    mic, out = np.asarray(mic, np.float64), np.asarray(out, np.float64)
    return float(10.0 * np.log10((np.mean(mic ** 2) + eps) / (np.mean(out ** 2) + eps)))


def si_sdr(reference: np.ndarray, estimate: np.ndarray, eps: float = 1e-12) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), means removed."""
    r = np.asarray(reference, np.float64) - np.mean(reference)
    e = np.asarray(estimate, np.float64) - np.mean(estimate)
    target = (np.dot(e, r) / (np.dot(r, r) + eps)) * r
    return float(10.0 * np.log10((np.sum(target ** 2) + eps) / (np.sum((e - target) ** 2)
                                                                   + eps)))


def pesq_wb(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float:
    """Wide-band PESQ (MOS-LQO, 1.04..4.64); NaN when PESQ finds no speech."""
    from pesq import PesqError, pesq

    if sample_rate != 16000:
        raise ValueError("PESQ-WB needs 16 kHz audio")
    try:
        return float(pesq(16000, np.asarray(reference, np.float32),
                          np.asarray(estimate, np.float32), "wb"))
    except PesqError:
        return float("nan")


def stoi(reference: np.ndarray, estimate: np.ndarray, sample_rate: int = 16000) -> float:
    from pystoi import stoi as _stoi

    return float(_stoi(np.asarray(reference, np.float64), np.asarray(estimate, np.float64),
                       sample_rate, extended=False))


def clip_metrics(scenario: str, mic: np.ndarray, out: np.ndarray, near: np.ndarray,
                 sample_rate: int = 16000) -> dict[str, float]:
    """The metrics that make sense for one clip of ``scenario``."""
    n = min(len(mic), len(out), len(near))
    mic, out, near = mic[:n], out[:n], near[:n]
    if scenario in ERLE_SCENARIOS:
        return {"erle": erle(mic, out)}
    return {"pesq": pesq_wb(near, out, sample_rate), "stoi": stoi(near, out, sample_rate),
            "si_sdr": si_sdr(near, out)}


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Rows ``{"system", "scenario", metric: value, ...}`` -> ``{system: {scenario: {metric:
    mean}}}`` (NaNs skipped), plus ``"n"`` clips per cell."""
    acc: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cell = acc[(r["system"], r["scenario"])]
        for k, v in r.items():
            if k not in ("system", "scenario", "clip") and isinstance(v, (int, float)):
                if np.isfinite(v):
                    cell[k].append(float(v))
        cell["n"].append(1.0)
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (system, scenario), cell in acc.items():
        out[system][scenario] = {k: (float(np.sum(v)) if k == "n" else float(np.mean(v)))
                                 for k, v in cell.items()}
    return dict(out)
