"""``audiofcn separate``: split songs into ``vocals.wav`` and ``accompaniment.wav``.

One file: ``OUT/vocals.wav`` and ``OUT/accompaniment.wav``. A folder: ``OUT/<name>/…`` for each
audio file in it; a bad file is reported in one line and skipped, and the exit status is 1 if any
file failed. Outputs are written atomically at the input's sample rate and channel count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiofcn.cli.checks import finite_float, positive_float, positive_int

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("separate", help="split songs into vocals and accompaniment",
                       description=__doc__)
    p.add_argument("input", type=Path, help="audio file or folder of audio files")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default=None,
                   help="separator checkpoint, or a shipped separator's name: "
                        "separator_fcn_ccby (default; real voices, redistributable audio) or "
                        "separator_fcn_synth (the package's rendered songs)")
    p.add_argument("--threshold", type=finite_float, default=None,
                   help="binarise the vocal mask at this value (the paper: 0.35 / 0.15); "
                        "default: soft mask")
    p.add_argument("--wiener", action="store_true", help="one Wiener refinement step")
    p.add_argument("--chunk-seconds", type=positive_float, default=20.0,
                   help="processing chunk (bounds memory: the file is read, separated and "
                        "written chunk by chunk); default 20")
    p.add_argument("--patch-hop", type=positive_int, default=1,
                   help="paper CNN only: 1 = one patch per frame (paper), 9 = disjoint patches")
    p.add_argument("--format", default="wav", choices=["wav", "flac"], help="output format")
    p.set_defaults(func=run)


def default_model_path(name: str | None = None) -> Path:
    from audiofcn.separation.inference import DEFAULT_SEPARATOR, resolve_separator

    return resolve_separator(name or DEFAULT_SEPARATOR)


def _load(args: argparse.Namespace):
    from audiofcn.cli.main import UserError
    from audiofcn.separation import load_separator
    from audiofcn.separation.inference import resolve_separator

    path = resolve_separator(args.model) if args.model else default_model_path()
    if not path.exists():
        raise UserError(f"{path}: separator checkpoint not found" +
                        ("" if args.model else " (the package ships without it; pass --model)"))
    return load_separator(path)


def separate_file(path: Path, out_dir: Path, model, args: argparse.Namespace) -> tuple[Path, Path]:
    """Separate one file into ``out_dir`` chunk by chunk (memory bounded by
    ``--chunk-seconds``, not by the file); raises :class:`AudioError` for unusable input.
    Both stems are written to hidden temporary files and renamed at the end, so a failure
    leaves no half pair behind; float WAV cannot clip, FLAC stems that would clip are scaled
    together by their common peak."""
    from audiofcn.separation.streaming import separate_to_files

    vocals, acc = _stem_paths(out_dir, args.format)
    separate_to_files(path, vocals, acc, model, threshold=args.threshold, wiener=args.wiener,
                      chunk_seconds=args.chunk_seconds, patch_hop=args.patch_hop)
    return vocals, acc


def _stem_paths(out_dir: Path, fmt: str) -> tuple[Path, Path]:
    return out_dir / f"vocals.{fmt}", out_dir / f"accompaniment.{fmt}"


def run(args: argparse.Namespace) -> int:
    from audiofcn.cli.checks import prepare_output, refuse_overwriting_inputs
    from audiofcn.cli.main import UserError
    from audiofcn.io import AudioError

    if not args.input.exists():
        raise UserError(f"{args.input}: no such file or folder")
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise UserError(f"--threshold must be between 0 and 1, got {args.threshold}")
    if args.chunk_seconds < 1.0:
        raise UserError(f"--chunk-seconds must be at least 1, got {args.chunk_seconds}")
    single = args.input.is_file()
    if single:
        jobs = [(args.input, args.out)]
    else:
        # Dangling links and other non-files with an audio suffix are kept: separate_file
        # reports each one, rather than the folder run silently skipping it.
        files = sorted(p for p in args.input.iterdir()
                       if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())
        if not files:
            raise UserError(f"{args.input}: no audio files "
                            f"({', '.join(sorted(AUDIO_SUFFIXES))})")
        jobs = [(f, args.out / f.stem) for f in files]
    refuse_overwriting_inputs([o for _, d in jobs for o in _stem_paths(d, args.format)],
                              [f for f, _ in jobs])
    prepare_output(args.out, folder=True)
    for _, d in jobs:
        prepare_output(d, folder=True)
    model = _load(args)
    if single:
        v, a = separate_file(args.input, args.out, model, args)
        print(f"{args.input} -> {v}, {a}")
        return 0
    failed: list[str] = []
    for f, d in jobs:
        try:
            v, a = separate_file(f, d, model, args)
            print(f"{f} -> {v}, {a}")
        except AudioError as err:
            failed.append(str(err))
            print(f"audiofcn: error: {err}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(jobs)} file(s) failed:", file=sys.stderr)
        for line in failed:
            print(f"  {line}", file=sys.stderr)
    return 1 if failed else 0


def separate_step(out: Path, catalog: Path) -> str:
    """Separate the first rendered song that has a vocal line with the shipped rendered-song
    model and score it against its exact stems."""
    from audiofcn.eval.separation import si_sdr
    from audiofcn.io import load_audio, read_manifest, save_audio
    from audiofcn.separation import load_separator, separate

    records = read_manifest(catalog / "manifest.jsonl")
    rec = next((r for r in records if "vocals" in r.stems), None)
    if rec is None:
        return "no rendered song with vocals in the catalog; skipped"
    from audiofcn.separation.inference import DEMO_SEPARATOR

    model_path = default_model_path(DEMO_SEPARATOR)
    if not model_path.exists():
        return f"{model_path.name} not shipped; skipped"
    model = load_separator(model_path)
    mix, sr = load_audio(rec.resolve(catalog))
    voice, _ = load_audio(catalog / rec.stems["vocals"], sr=sr)
    res = separate(mix, sr, model)
    dest = out / "separation"
    save_audio(dest / "vocals.wav", res.vocals, sr, subtype="FLOAT")
    save_audio(dest / "accompaniment.wav", res.accompaniment, sr, subtype="FLOAT")
    gain = si_sdr(voice[0], res.vocals[0]) - si_sdr(voice[0], mix[0])
    return (f"{rec.path}: vocals SI-SDR improvement {gain:+.1f} dB over the mixture "
            f"({DEMO_SEPARATOR}; real songs: `audiofcn separate`'s default) "
            f"-> {dest}/vocals.wav, accompaniment.wav")
