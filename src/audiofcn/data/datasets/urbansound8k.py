"""UrbanSound8K (10 classes, 10 predefined folds).

Layout::

    ROOT/metadata/UrbanSound8K.csv    slice_file_name, fsID, start, end, salience, fold,
                                      classID, class
    ROOT/audio/fold1 ... fold10/

Split: the predefined folds must be used (slices of one Freesound recording share a fold);
``test_fold`` (default 10) is test, ``valid_fold`` (default: the fold before it) is valid.
Report 10-fold cross-validation by building one manifest per test fold.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import read_rows, require
from audiofcn.io.manifest import AudioRecord


def build(root: Path, test_fold: int = 10, valid_fold: int | None = None) -> list[AudioRecord]:
    valid_fold = valid_fold or (test_fold - 2) % 10 + 1
    rows = read_rows(require(root / "metadata" / "UrbanSound8K.csv", "metadata csv"))
    records = []
    for r in rows:
        fold = int(r["fold"])
        rel = f"audio/fold{fold}/{r['slice_file_name']}"
        split = "test" if fold == test_fold else "valid" if fold == valid_fold else "train"
        duration = float(r["end"]) - float(r["start"])
        records.append(AudioRecord(rel, duration, 44100, split, label=r["class"],
                                   group=f"fs{r['fsID']}", meta={"fold": fold}))
    return records
