"""``audiofcn data synth``: render the built-in music catalog."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="built-in data")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    s = dsub.add_parser("synth", help="render seeded multi-instrument songs with exact "
                        "stems and tags (no downloads)")
    s.add_argument("--n", type=int, default=200, help="number of songs (default 200)")
    s.add_argument("--out", required=True, help="output folder (audio/, manifest.jsonl)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--duration", type=float, default=8.0, help="seconds per song")
    s.add_argument("--sr", type=int, default=16000, help="sample rate")
    s.add_argument("--stems", action="store_true", help="also write each part's stem")
    s.add_argument("--workers", type=int, default=None, help="render processes (default: cores)")
    s.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from audiofcn.cli.main import UserError
    from audiofcn.data.synth import SynthConfig, synth_catalog

    if args.n <= 0 or args.duration <= 0:
        raise UserError("--n and --duration must be positive")
    records = synth_catalog(args.out, args.n, seed=args.seed,
                            config=SynthConfig(sample_rate=args.sr, duration=args.duration),
                            with_stems=args.stems, workers=args.workers)
    splits = {s: sum(r.split == s for r in records) for s in ("train", "valid", "test")}
    print(f"wrote {len(records)} songs to {args.out} (manifest {args.out}/manifest.jsonl; "
          f"splits {splits})")
    return 0
