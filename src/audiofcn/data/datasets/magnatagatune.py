"""MagnaTagATune (MTAT) top-50 auto-tagging.

Layout::

    ROOT/annotations_final.csv      tab-separated: clip_id, 188 tag columns (0/1), mp3_path
    ROOT/mp3/0/... ROOT/mp3/f/      the 16 folders of clips (or ROOT/0 ... ROOT/f)

Split (Dieleman & Schrauwen 2014; Choi et al. 2016): folders 0-b train, c valid, d-f test.
Tags: the 50 most frequent; clips with none of them are kept (all-negative) as in the common
reimplementations. Tracks are cut into clips that share a folder, so the split never leaks
a track across train/test.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import read_rows, require
from audiofcn.io.manifest import AudioRecord

TRAIN = set("0123456789ab")


def build(root: Path, n_tags: int = 50, read_headers: bool = False) -> list[AudioRecord]:
    rows = read_rows(require(root / "annotations_final.csv", "tag annotations"), "\t")
    if not rows:
        return []
    tag_cols = [c for c in rows[0] if c not in ("clip_id", "mp3_path")]
    counts = {t: sum(r[t] == "1" for r in rows) for t in tag_cols}
    top = sorted(tag_cols, key=lambda t: (-counts[t], t))[:n_tags]
    audio_root = root / "mp3" if (root / "mp3").is_dir() else root
    records = []
    for r in rows:
        rel = r["mp3_path"]
        folder = rel.split("/")[0]
        split = "train" if folder in TRAIN else "valid" if folder == "c" else "test"
        path = (audio_root / rel).relative_to(root)
        duration, sr = 29.1, 16000  # MTAT clips; read_headers=True measures them instead
        if read_headers:
            from audiofcn.data.datasets._common import header

            duration, sr = header(root / path)
        tags = [t for t in top if r[t] == "1"]
        track = "-".join(Path(rel).stem.split("-")[:-2]) or r["clip_id"]
        records.append(AudioRecord(str(path), duration, sr, split, tags=tags, group=track,
                                   meta={"clip_id": r["clip_id"]}))
    return records
