"""Paired per-clip comparison of two systems in an ``evaluate.py`` report: how many clips each
wins on voice NSDR, the per-singer GNSDR of both, and the duration-weighted mean difference.

Usage::

    python recipes/separation/compare.py runs/separation/eval_mir1k_recon/report.json \\
        fcn_fast_recon_x3 openunmix_x3
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("a")
    ap.add_argument("b")
    args = ap.parse_args()
    out = compare(json.loads(args.report.read_text()), args.a, args.b)
    print(f"{args.a} vs {args.b}: GNSDR difference {out['gnsdr_difference']:+.2f} dB; "
          f"higher voice NSDR on {out['wins']} of {out['clips']} clips")
    for singer, g in out["per_singer"].items():
        print(f"  {singer}: {args.a} {g[args.a]:.2f} dB, {args.b} {g[args.b]:.2f} dB")


if __name__ == "__main__":
    main()
