"""MTG-Jamendo auto-tagging (top-50 tags, official split-0).

Layout (as in the mtg-jamendo-dataset repository)::

    ROOT/data/splits/split-0/autotagging_top50tags-{train,validation,test}.tsv
    ROOT/audio/<PATH from the tsv, e.g. 14/214.mp3>   (or ROOT/<PATH>)

Each tsv row: TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION, then one tag per column
(``genre---rock``, ``instrument---piano``, ``mood/theme---happy``). The official splits keep
artists apart; the artist is the record's ``group``.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import require
from audiofcn.io.manifest import AudioRecord

SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def build(root: Path, split_id: int = 0, subset: str = "top50tags") -> list[AudioRecord]:
    folder = require(root / "data" / "splits" / f"split-{split_id}", "official split tsv files")
    audio_root = root / "audio" if (root / "audio").is_dir() else root
    records = []
    for name, split in SPLITS.items():
        tsv = require(folder / f"autotagging_{subset}-{name}.tsv", f"{name} split")
        lines = tsv.read_text(encoding="utf-8").splitlines()
        for line in lines[1:]:
            cols = line.split("\t")
            if len(cols) < 6:
                continue
            track, artist, album, path, duration, *tags = cols
            rel = (audio_root / path).relative_to(root)
            records.append(AudioRecord(str(rel), float(duration), 44100, split,
                                       tags=sorted(tags), group=artist,
                                       meta={"track_id": track, "album_id": album}))
    return records
