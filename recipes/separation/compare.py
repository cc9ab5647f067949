"""Paired per-clip comparison of two systems in an ``evaluate.py`` report: how many clips each
wins on voice NSDR, the per-singer GNSDR of both, and the duration-weighted mean difference;
or (``--per-singer``) the per-singer GNSDR table of every system in the report.

Usage::

    python recipes/separation/compare.py runs/separation/eval_mir1k_recon/report.json \\
        fcn_fast_recon_x3 openunmix_x3
    python recipes/separation/compare.py runs/separation/eval_real/report.json --per-singer
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def compare(report: dict, a: str, b: str) -> dict:
    clips = report["clips"]
    for name in (a, b):
        if name not in clips:
            raise SystemExit(f"{name!r} is not in the report (systems: {', '.join(clips)})")
    rows_a, rows_b = clips[a], clips[b]
    common = sorted(set(rows_a) & set(rows_b))
    if not common:
        raise SystemExit(f"{a} and {b} share no clips")
    wins = sum(rows_a[k]["voice_nsdr"] > rows_b[k]["voice_nsdr"] for k in common)
    per_singer: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for k in common:
        singer = k.split("_")[0]
        d = rows_a[k]["duration"]
        acc = per_singer[singer]
        acc[0] += d * rows_a[k]["voice_nsdr"]
        acc[1] += d * rows_b[k]["voice_nsdr"]
        acc[2] += d
    total = sum(v[2] for v in per_singer.values())
    diff = sum(v[0] - v[1] for v in per_singer.values()) / total
    return {"clips": len(common), "wins": wins, "gnsdr_difference": diff,
            "per_singer": {s: {a: v[0] / v[2], b: v[1] / v[2]}
                           for s, v in sorted(per_singer.items())}}


def per_singer_table(report: dict) -> str:
    """Markdown: GNSDR (duration-weighted voice NSDR) per singer (clip-name prefix) and pooled,
    one row per system of the report."""
    singers = sorted({k.split("_")[0] for rows in report["clips"].values() for k in rows})
    lines = ["| system | " + " | ".join(singers) + " | all |",
             "|---|" + "---:|" * (len(singers) + 1)]
    for name, rows in report["clips"].items():
        cells = []
        for s in [*singers, None]:
            sel = [r for k, r in rows.items() if s is None or k.split("_")[0] == s]
            d = sum(r["duration"] for r in sel)
            cells.append(f"{sum(r['duration'] * r['voice_nsdr'] for r in sel) / d:.2f}"
                         if d else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("a", nargs="?")
    ap.add_argument("b", nargs="?")
    ap.add_argument("--per-singer", action="store_true",
                    help="print the per-singer GNSDR table of every system instead")
    args = ap.parse_args()
    if args.per_singer or not (args.a and args.b):
        print(per_singer_table(json.loads(args.report.read_text())))
        return
    out = compare(json.loads(args.report.read_text()), args.a, args.b)
    print(f"{args.a} vs {args.b}: GNSDR difference {out['gnsdr_difference']:+.2f} dB; "
          f"higher voice NSDR on {out['wins']} of {out['clips']} clips")
    for singer, g in out["per_singer"].items():
        print(f"  {singer}: {args.a} {g[args.a]:.2f} dB, {args.b} {g[args.b]:.2f} dB")


if __name__ == "__main__":
    main()
