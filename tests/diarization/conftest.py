"""Synthetic 'voices' for the diarization tests: harmonic tones with a speaker-specific pitch
and spectral tilt, in syllable-like bursts, so two speakers are clearly different."""

from __future__ import annotations

import numpy as np
import pytest

SR = 16000


def voice(f0: float, tilt: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(np.sin(k * phase) / k ** tilt for k in range(1, 25) if k * f0 < 7000)
    env = (np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 6)) > -0.6).astype(float)
    x = x * env + 0.003 * rng.standard_normal(len(t))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def conversation(seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """A-B-A-B turns of 3 s with 0.5-s pauses; returns audio and reference turns."""
    voices = {"A": (110.0, 0.6), "B": (260.0, 2.0)}
    parts, ref, t = [np.zeros(int(0.5 * SR), np.float32)], [], 0.5
    for i, spk in enumerate("ABABAB"):
        x = voice(*voices[spk], 3.0, seed + i)
        parts += [x, np.zeros(int(0.5 * SR), np.float32)]
        ref.append((t, t + 3.0, spk))
        t += 3.5
    return np.concatenate(parts), ref


@pytest.fixture
def two_speaker_audio() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    return conversation()


@pytest.fixture
def synth_voice():
    return voice
