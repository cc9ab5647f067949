"""Resampling cost at odd rates: time and peak-memory growth for 2 s of audio to 16 kHz.

    python benchmarks/resample.py [--rates 1000 8001 44101 384000]

Each rate runs in a fresh subprocess so its peak RSS growth (``ru_maxrss`` after minus before
the call, torch import excluded) is its own. Prints a markdown table. Target (issue 21): every
rate from 1 kHz to 384 kHz under 1 s and 500 MB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, time, torch
from audiofcn.io import resample
torch.set_num_threads(1)
x = torch.randn(1, 2 * {sr})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
y = resample(x, {sr}, 16000)
dt = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": dt, "growth_mb": (after - before) / 1024}}))
"""

DEFAULT_RATES = [1000, 7999, 8001, 11025, 22050, 44100, 44101, 48000, 88200, 96000, 176400,
                 192000, 352800, 384000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=int, nargs="+", default=DEFAULT_RATES)
    args = ap.parse_args()
    print("| input rate (Hz) | time for 2 s (s) | peak RSS growth (MB) |")
    print("|---:|---:|---:|")
    for sr in args.rates:
        out = subprocess.run([sys.executable, "-c", CHILD.format(sr=sr)], capture_output=True,
                             text=True, check=True)
        rep = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {sr} | {rep['seconds']:.3f} | {rep['growth_mb']:.1f} |")


if __name__ == "__main__":
    main()
