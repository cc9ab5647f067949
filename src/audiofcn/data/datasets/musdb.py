"""MUSDB18-HQ (decoded WAV) vocals/accompaniment separation.

Layout::

    ROOT/train/<Artist - Title>/{mixture,vocals,drums,bass,other}.wav
    ROOT/test/<Artist - Title>/...

Split: the official 100 train / 50 test tracks, with the official 14-track validation subset
of train (the list used by musdb and Open-Unmix). For the STEM (.mp4) release, decode to WAV
first (``musdbconvert``). Stems: vocals, drums, bass, other, plus ``accompaniment`` = the sum
of the non-vocal stems, which separation recipes compute on load.
"""

from __future__ import annotations

from pathlib import Path

from audiofcn.data.datasets._common import header, require
from audiofcn.io.manifest import AudioRecord

VALIDATION_TRACKS = {
    "Actions - One Minute Smile", "Clara Berry And Wooldog - Waltz For My Victims",
    "Johnny Lokke - Promises & Lies", "Patrick Talbot - A Reason To Leave",
    "Triviul - Angelsaint", "Alexander Ross - Goodbye Bolero", "Fergessen - Nos Palpitants",
    "Leaf - Summerghost", "Skelpolu - Human Mistakes", "Young Griffo - Pennies",
    "ANiMAL - Rockshow", "James May - On The Line", "Meaxic - Take A Step",
    "Traffic Experiment - Sirens",
}
STEMS = ("vocals", "drums", "bass", "other")


def build(root: Path) -> list[AudioRecord]:
    records = []
    for subset in ("train", "test"):
        for track in sorted(p for p in require(root / subset, f"{subset} folder").iterdir()
                            if p.is_dir()):
            mix = require(track / "mixture.wav", "mixture")
            duration, sr = header(mix)
            split = "test" if subset == "test" else \
                "valid" if track.name in VALIDATION_TRACKS else "train"
            stems = {s: str((track / f"{s}.wav").relative_to(root)) for s in STEMS}
            records.append(AudioRecord(str(mix.relative_to(root)), duration, sr, split,
                                       stems=stems, group=track.name))
    return records
