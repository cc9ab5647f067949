"""iKala singing-voice separation (the 252 public 30 s clips).

Layout::

    ROOT/Wav/{singer}_{section}.wav      44.1 kHz stereo: left = accompaniment, right = voice
    ROOT/PitchLabel/, ROOT/Lyrics/       optional

iKala has no public test split (MIREX kept one hidden), so splits are by singer id, seeded.
Stems are channels as for MIR-1K (``#0`` accompaniment, ``#1`` vocals).
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import audio_files, header, require, split_groups
from audiofcn.io.manifest import AudioRecord


def build(root: Path, valid: float = 0.15, test: float = 0.25, seed: int = 0) -> list[AudioRecord]:
    files = audio_files(require(root / "Wav", "Wav folder of stereo clips"))
    singers = [f.stem.split("_")[0] for f in files]
    assign = split_groups(singers, valid, test, seed)
    records = []
    for f, singer in zip(files, singers, strict=True):
        duration, sr = header(f)
        rel = str(f.relative_to(root))
        records.append(AudioRecord(rel, duration, sr, assign[singer], group=singer,
                                   stems={"vocals": f"{rel}#1", "accompaniment": f"{rel}#0"}))
    return records
