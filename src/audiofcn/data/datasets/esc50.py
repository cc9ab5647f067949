"""ESC-50 environmental sounds (50 classes, 5 folds of 5 s clips).

Layout::

    ROOT/meta/esc50.csv    filename, fold, target, category, esc10, src_file, take
    ROOT/audio/*.wav

Split: predefined folds (clips cut from one source recording share a fold); ``test_fold``
(default 5) is test, ``valid_fold`` (default 4) valid. ``esc10=True`` keeps the ESC-10 subset.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import read_rows, require
from audiofcn.io.manifest import AudioRecord


def build(root: Path, test_fold: int = 5, valid_fold: int | None = None,
          esc10: bool = False) -> list[AudioRecord]:
    valid_fold = valid_fold or (test_fold - 2) % 5 + 1
    rows = read_rows(require(root / "meta" / "esc50.csv", "metadata csv"))
    records = []
    for r in rows:
        if esc10 and r["esc10"] != "True":
            continue
        fold = int(r["fold"])
        split = "test" if fold == test_fold else "valid" if fold == valid_fold else "train"
        records.append(AudioRecord(f"audio/{r['filename']}", 5.0, 44100, split,
                                   label=r["category"], group=f"src{r['src_file']}",
                                   meta={"fold": fold}))
    return records
