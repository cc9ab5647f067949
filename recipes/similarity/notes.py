"""Rendered single notes and short phrases (self-made training audio, may ship).

The built-in songs are dense mixes; catalogs of isolated notes (sample libraries, the
Philharmonia evaluation) look different: one instrument, an onset, a decay, silence. These clips
add that shape with the package's own GM soundfont: one melodic program per clip, one note
(75 %) or a phrase of 2-6 notes, lengths like a sample library's (0.25-4 s), random pitch and
velocity. Each clip is its own track for the triplet loss, so notes of the same instrument at
other pitches are negatives.
"""

from __future__ import annotations

import numpy as np
import torch

from audiofcn.data.synth import _render_part

LENGTHS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def render_note_clip(seed: int, sample_rate: int = 16000, seconds: float = 4.0
                     ) -> torch.Tensor:
    """One clip ``(time,)``; deterministic in ``seed``."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    inst = pretty_midi.Instrument(program=int(rng.integers(0, 112)))  # melodic GM programs
    pitch, t = int(rng.integers(36, 89)), float(rng.uniform(0.0, 0.3))
    n_notes = 1 if rng.random() < 0.75 else int(rng.integers(2, 7))
    for _ in range(n_notes):
        length = float(rng.choice(LENGTHS)) * float(rng.uniform(0.8, 1.2))
        if n_notes > 1:
            length = min(length, 0.6)
        end = min(t + length, seconds - 0.05)
        if end <= t:
            break
        inst.notes.append(pretty_midi.Note(velocity=int(rng.integers(30, 128)), pitch=pitch,
                                           start=t, end=end))
        t = end + float(rng.uniform(0.0, 0.1))
        pitch = int(np.clip(pitch + rng.integers(-4, 5), 30, 96))
    x = _render_part(inst, 120.0, int(seconds * sample_rate), sample_rate)
    peak = float(np.abs(x).max())
    if peak > 0:
        x = x / peak * float(rng.uniform(0.3, 0.9))
    return torch.from_numpy(x)


def render_note_clips(n: int, seed: int = 0, sample_rate: int = 16000, seconds: float = 4.0
                      ) -> list[torch.Tensor]:
    """``n`` clips; clip ``i`` uses seed ``seed * 1_000_003 + i``. Silent renders are dropped."""
    clips = [render_note_clip(seed * 1_000_003 + i, sample_rate, seconds) for i in range(n)]
    return [c for c in clips if float(c.abs().max()) > 1e-4]
