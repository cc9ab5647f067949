"""MIR-1K singing-voice separation.

Layout::

    ROOT/Wavfile/{singer}_{song}_{clip}.wav     16 kHz stereo: left = accompaniment,
                                                right = singing voice (mixture = left + right)
    ROOT/vocal-nonvocalLabel/*.vocal            optional: 0/1 voice activity per 20 ms frame

Splits are by singer, never by clip. ``split="hsu-jang"`` (default) is the protocol of Hsu &
Jang (2010) used by most papers: singers ``abjones`` and ``amy`` train, all other singers test;
``split="singers"`` draws whole singers into train/valid/test (seeded) for a validation set.
Stems are channels of the same file: ``stems = {"vocals": "<path>#1", "accompaniment":
"<path>#0"}`` (``#k`` = channel k), so no decoded copies are needed.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import audio_files, header, require, split_groups
from audiofcn.io.manifest import AudioRecord

HSU_JANG_TRAIN = {"abjones", "amy"}


def build(root: Path, split: str = "hsu-jang", valid: float = 0.15, test: float = 0.25,
          seed: int = 0) -> list[AudioRecord]:
    wav_dir = require(root / "Wavfile", "Wavfile folder of stereo clips")
    files = audio_files(wav_dir)
    singers = [f.stem.split("_")[0] for f in files]
    if split == "singers":
        assign = split_groups(singers, valid, test, seed)
    elif split == "hsu-jang":
        assign = {s: "train" if s in HSU_JANG_TRAIN else "test" for s in singers}
    else:
        raise ValueError(f"unknown MIR-1K split {split!r} (use 'hsu-jang' or 'singers')")
    records = []
    for f, singer in zip(files, singers, strict=True):
        duration, sr = header(f)
        rel = str(f.relative_to(root))
        label = root / "vocal-nonvocalLabel" / f"{f.stem}.vocal"
        meta = {"voice_activity": str(label.relative_to(root))} if label.exists() else {}
        records.append(AudioRecord(rel, duration, sr, assign[singer], group=singer,
                                   stems={"vocals": f"{rel}#1", "accompaniment": f"{rel}#0"},
                                   meta={"song": "_".join(f.stem.split("_")[:2]), **meta}))
    return records
