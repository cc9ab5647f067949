"""``audiofcn info FILE...``: duration, sample rate, channels, peak and RMS level."""

from __future__ import annotations

import argparse
import json
import math
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe audio files (duration, rate, channels, levels)")
    p.add_argument("files", nargs="+", help="audio files")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def describe(path: str) -> dict[str, object]:
    """Header fields and levels, reading the file in blocks (any length, any channel count)."""
    from audiofcn.io.stream import read_blocks

    info, blocks = read_blocks(path)
    peak, energy, n = 0.0, 0.0, 0
    for b in blocks:
        peak = max(peak, float(abs(b).max()))
        energy += float((b.astype("float64") ** 2).sum())
        n += b.size
    rms = math.sqrt(energy / max(n, 1))
    return {"path": path, "duration_s": round(info.duration, 4),
            "sample_rate": info.sample_rate, "channels": info.channels, "frames": info.frames,
            "format": info.format, "subtype": info.subtype, "peak": round(peak, 6),
            "rms": round(rms, 6), "peak_dbfs": round(20 * math.log10(max(peak, 1e-12)), 2),
            "rms_dbfs": round(20 * math.log10(max(rms, 1e-12)), 2),
            "silent": peak == 0.0}


def run(args: argparse.Namespace) -> int:
    from audiofcn.io.audio import AudioError

    failures = 0
    for path in args.files:
        try:
            d = describe(path)
        except AudioError as err:
            print(f"audiofcn: error: {err}", file=sys.stderr)
            failures += 1
            continue
        if args.json:
            print(json.dumps(d))
        else:
            note = ", silent (all samples zero)" if d["silent"] else ""
            if d["frames"] == 1:
                note += ", 1 sample only"
            print(f"{d['path']}: {d['duration_s']:.3f} s, {d['sample_rate']} Hz, "
                  f"{d['channels']} ch, {d['format']}/{d['subtype']}, "
                  f"peak {d['peak_dbfs']:.1f} dBFS, RMS {d['rms_dbfs']:.1f} dBFS{note}")
    return 1 if failures else 0
