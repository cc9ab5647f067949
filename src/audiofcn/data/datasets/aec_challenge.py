"""ICASSP / Interspeech AEC Challenge, synthetic dataset.

Layout (``datasets/synthetic`` of the AEC-Challenge repository)::

    ROOT/farend_speech/farend_speech_fileid_{N}.wav
    ROOT/echo_signal/echo_fileid_{N}.wav
    ROOT/nearend_mic_signal/nearend_mic_fileid_{N}.wav
    ROOT/nearend_speech/nearend_speech_fileid_{N}.wav
    ROOT/meta.csv                      optional: scenario, SER, SNR, nonlinearity per fileid

Split: file ids 0-499 test (the synthetic test protocol used by DTLN-aec and by Watcharasupat
et al.), 500-999 valid, the rest train. Roles: ``mic``, ``ref`` (far-end), ``echo``, ``near``.
"""

from __future__ import annotations

import re
from pathlib import Path

from audiofcn.data.datasets._common import header, read_rows, require
from audiofcn.io.manifest import AudioRecord

ROLE_DIRS = {"mic": ("nearend_mic_signal", "nearend_mic"), "ref": ("farend_speech",
             "farend_speech"), "echo": ("echo_signal", "echo"),
             "near": ("nearend_speech", "nearend_speech")}


def build(root: Path, n_test: int = 500, n_valid: int = 500) -> list[AudioRecord]:
    mic_dir = require(root / "nearend_mic_signal", "microphone signals")
    meta = {}
    if (root / "meta.csv").exists():
        meta = {r.get("fileid", ""): r for r in read_rows(root / "meta.csv")}
    records = []
    for mic in sorted(mic_dir.glob("*.wav")):
        m = re.search(r"fileid_(\d+)", mic.stem)
        if not m:
            continue
        fid = int(m.group(1))
        roles = {}
        for role, (folder, prefix) in ROLE_DIRS.items():
            p = root / folder / f"{prefix}_fileid_{fid}.wav"
            if p.exists():
                roles[role] = str(p.relative_to(root))
        duration, sr = header(mic)
        split = "test" if fid < n_test else "valid" if fid < n_test + n_valid else "train"
        records.append(AudioRecord(roles["mic"], duration, sr, split, roles=roles,
                                   group=f"fileid_{fid}", meta=dict(meta.get(str(fid), {}))))
    return records
