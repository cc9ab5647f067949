"""Render the built-in music used to train and evaluate the similarity embedding.

    python recipes/similarity/prepare.py --out data/similarity --n 320 --duration 10

Songs are split train/valid/test by song (80/10/10); every song is its own group, so no song is
in two splits. Nothing outside the package is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from audiofcn.data.synth import SynthConfig, synth_catalog


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/similarity")
    p.add_argument("--n", type=int, default=320, help="songs to render")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per song")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args(argv)
    recs = synth_catalog(Path(args.out), args.n, seed=args.seed,
                         config=SynthConfig(sample_rate=16000, duration=args.duration),
                         workers=args.workers)
    splits = {s: sum(r.split == s for r in recs) for s in ("train", "valid", "test")}
    print(f"rendered {len(recs)} songs -> {args.out}/manifest.jsonl {splits}")


if __name__ == "__main__":
    main()
