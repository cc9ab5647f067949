"""``audiofcn data synth``: render the built-in music catalog."""

from __future__ import annotations

import argparse

from audiofcn.cli.checks import positive_float, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="built-in data")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    s = dsub.add_parser("synth", help="render seeded multi-instrument songs with exact "
                        "stems and tags (no downloads)")
    s.add_argument("--n", type=positive_int, default=200, help="number of songs (default 200)")
    s.add_argument("--out", required=True, help="output folder (audio/, manifest.jsonl)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--duration", type=positive_float, default=8.0, help="seconds per song")
    s.add_argument("--sr", type=positive_int, default=16000, help="sample rate")
    s.add_argument("--stems", action="store_true", help="also write each part's stem")
    s.add_argument("--workers", type=positive_int, default=None,
                   help="render processes (default: cores)")
    s.set_defaults(func=run_synth)

    m = dsub.add_parser("manifest", help="build a JSONL manifest from a local copy of a "
                        "public dataset (see data_manifests/README.md)")
    m.add_argument("dataset", help="magnatagatune, mtg-jamendo, musdb18, mir1k, ikala, fsdd, "
                   "urbansound8k, esc50, aec-challenge")
    m.add_argument("root", help="dataset folder")
    m.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    m.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="builder option, e.g. task=speaker or test_fold=3 (repeatable)")
    m.add_argument("--no-check", action="store_true", help="skip checking that files exist")
    m.set_defaults(func=run_manifest)


def run_synth(args: argparse.Namespace) -> int:
    from audiofcn.cli.checks import prepare_output
    from audiofcn.data.synth import SynthConfig, synth_catalog

    prepare_output(args.out, folder=True)
    records = synth_catalog(args.out, args.n, seed=args.seed,
                            config=SynthConfig(sample_rate=args.sr, duration=args.duration),
                            with_stems=args.stems, workers=args.workers)
    splits = {s: sum(r.split == s for r in records) for s in ("train", "valid", "test")}
    print(f"wrote {len(records)} songs to {args.out} (manifest {args.out}/manifest.jsonl; "
          f"splits {splits})")
    return 0


def _parse_option(text: str) -> tuple[str, object]:
    from audiofcn.cli.main import UserError

    if "=" not in text:
        raise UserError(f"--option {text!r}: expected KEY=VALUE")
    key, value = text.split("=", 1)
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def run_manifest(args: argparse.Namespace) -> int:
    from collections import Counter
    from pathlib import Path

    from audiofcn.cli.checks import refuse_overwriting_inputs
    from audiofcn.cli.main import UserError
    from audiofcn.data.datasets import BUILDERS, build_manifest
    from audiofcn.io.manifest import validate_manifest, write_manifest

    if args.dataset not in BUILDERS:
        raise UserError(f"unknown dataset {args.dataset!r}; known: {', '.join(sorted(BUILDERS))}")
    options = dict(_parse_option(o) for o in args.option)
    try:
        records = build_manifest(args.dataset, args.root, **options)
    except TypeError as err:
        raise UserError(f"{args.dataset}: bad --option ({err})") from None
    if not records:
        raise UserError(f"{args.root}: no {args.dataset} audio found")
    # Channel references ("file.wav#1") name a channel of an existing file.
    problems = [] if args.no_check else validate_manifest(
        [r.__class__(**{**r.__dict__, "stems": {k: v.split("#")[0] for k, v in
                                                r.stems.items()}}) for r in records],
        root=args.root)
    if problems:
        raise UserError(f"{len(problems)} problem(s), first: {problems[0]}")
    inputs = [r.resolve(args.root) for r in records]
    inputs += [Path(args.root) / v.split("#")[0] for r in records
               for v in (*r.stems.values(), *r.roles.values())]
    refuse_overwriting_inputs([args.out], inputs)
    write_manifest(args.out, records)
    splits = Counter(r.split for r in records)
    print(f"wrote {len(records)} records to {args.out} (paths relative to {args.root}; "
          f"splits {dict(sorted(splits.items()))})")
    return 0
