"""Free Spoken Digit Dataset (FSDD): digit or speaker classification.

Layout::

    ROOT/recordings/{digit}_{speaker}_{index}.wav   (or the files directly in ROOT; .flac too)

Split (the dataset's own recommendation): recordings with index 0-4 are the test set, the rest
train; index 5-9 are held out as validation. The same split serves digit recognition
(``task="digit"``) and speaker identification (``task="speaker"``): held-out utterances of
the same speakers, never chunks of a training file. ``group`` is the recording itself.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import audio_files, header
from audiofcn.io.manifest import AudioRecord


def build(root: Path, task: str = "digit") -> list[AudioRecord]:
    if task not in ("digit", "speaker"):
        raise ValueError(f"unknown FSDD task {task!r} (use 'digit' or 'speaker')")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    records = []
    for f in audio_files(folder):
        parts = f.stem.split("_")
        if len(parts) != 3 or not parts[2].isdigit():
            continue
        digit, speaker, index = parts[0], parts[1], int(parts[2])
        split = "test" if index < 5 else "valid" if index < 10 else "train"
        duration, sr = header(f)
        records.append(AudioRecord(str(f.relative_to(root)), duration, sr, split,
                                   label=digit if task == "digit" else speaker, group=f.stem,
                                   meta={"digit": digit, "speaker": speaker, "index": index}))
    return records
