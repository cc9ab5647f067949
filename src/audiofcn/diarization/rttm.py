"""RTTM and JSON output of a diarization (written atomically).

RTTM line: ``SPEAKER <uri> 1 <onset> <duration> <NA> <NA> <label> <NA> <NA>`` (NIST RT-09).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from audiofcn.diarization.pipeline import Diarization, Segment
from audiofcn.io.audio import atomic_output


class RTTMError(ValueError):
    """A malformed RTTM line; the message names the file and line."""


def to_rttm(d: Diarization) -> str:
    return "".join(f"SPEAKER {d.uri} 1 {s.start:.3f} {s.duration:.3f} <NA> <NA> {s.speaker} "
                   "<NA> <NA>\n" for s in d.segments)


def write_rttm(path: str | os.PathLike[str], d: Diarization) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(to_rttm(d))
    return Path(path)


def write_json(path: str | os.PathLike[str], d: Diarization) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(d.to_dict(), indent=1))
    return Path(path)


def read_rttm(path: str | os.PathLike[str]) -> dict[str, list[Segment]]:
    """``uri -> segments`` of the ``SPEAKER`` lines of an RTTM file."""
    out: dict[str, list[Segment]] = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        if len(f) < 8:
            raise RTTMError(f"{path}:{i}: expected at least 8 fields, got {len(f)}")
        try:
            onset, dur = float(f[3]), float(f[4])
        except ValueError:
            raise RTTMError(f"{path}:{i}: onset/duration are not numbers") from None
        out.setdefault(f[1], []).append(Segment(onset, onset + dur, f[7]))
    return out
