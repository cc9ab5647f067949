"""``audiofcn diarize`` (who spoke when) and ``audiofcn speakers enroll/identify``.

``audiofcn diarize FILE... -o OUT`` writes ``OUT/<stem>.rttm`` and ``OUT/<stem>.json`` per file
(atomically). A bad file is reported in one line and skipped; the exit status is 1 if any
failed. With ``--db DIR`` clusters that match an enrolled speaker carry that speaker's name.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("diarize", help="who spoke when: RTTM + JSON per file",
                       description=__doc__)
    p.add_argument("files", nargs="+", type=Path, help="audio files")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--num-speakers", type=int, default=None, help="exact number of speakers")
    p.add_argument("--min-speakers", type=int, default=1)
    p.add_argument("--max-speakers", type=int, default=8)
    p.add_argument("--model", type=Path, default=None,
                   help="speaker embedding checkpoint (default: the shipped diarizer_rcnn)")
    p.add_argument("--db", type=Path, default=None,
                   help="speaker database (audiofcn speakers enroll): name matching clusters")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_diarize)

    sp = sub.add_parser("speakers", help="enroll and identify speakers across recordings")
    ssub = sp.add_subparsers(dest="speakers_command", metavar="ACTION", required=True)
    e = ssub.add_parser("enroll", help="add a speaker's recordings to a speaker database")
    e.add_argument("name", help="speaker name (letters, digits, _ . -)")
    e.add_argument("files", nargs="+", type=Path)
    e.add_argument("--db", type=Path, required=True, help="database folder (created if new)")
    e.add_argument("--model", type=Path, default=None)
    e.set_defaults(func=run_enroll)
    i = ssub.add_parser("identify", help="which enrolled speaker talks in a file")
    i.add_argument("file", type=Path)
    i.add_argument("--db", type=Path, required=True)
    i.add_argument("--threshold", type=float, default=None,
                   help="minimum score for a match (default: the database's)")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.set_defaults(func=run_identify)


def _check_files(files: list[Path]) -> None:
    from audiofcn.cli.main import UserError

    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: no such file")


def _open_db(path: Path, create: bool = False, model: Path | None = None,
             threshold: float | None = None):
    from audiofcn.cli.main import UserError
    from audiofcn.diarization.speakers import DEFAULT_THRESHOLD, SpeakerDB
    from audiofcn.index import CatalogError

    try:
        return SpeakerDB.open(path, create=create, model=model,
                              threshold=DEFAULT_THRESHOLD if threshold is None else threshold)
    except CatalogError as err:
        raise UserError(str(err)) from None


def run_diarize(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from audiofcn.cli.main import UserError
    from audiofcn.diarization import RCNNEmbedder, diarize, write_json, write_rttm
    from audiofcn.io.audio import AudioError, audio_info

    torch.set_num_threads(max(1, args.threads))
    if args.num_speakers is not None and args.num_speakers < 1:
        raise UserError(f"--num-speakers must be at least 1, got {args.num_speakers}")
    if args.min_speakers < 1 or args.max_speakers < args.min_speakers:
        raise UserError("need 1 <= --min-speakers <= --max-speakers")
    if args.model is not None and not args.model.is_file():
        raise UserError(f"{args.model}: checkpoint not found")
    _check_files(args.files)
    stems = [f.stem for f in args.files]
    if len(set(stems)) < len(stems):
        raise UserError("two inputs share a file name stem; their outputs would collide")
    embedder = RCNNEmbedder.from_pretrained(args.model)
    db = _open_db(args.db) if args.db is not None else None
    failed = 0
    for f in args.files:
        try:
            dur = audio_info(f).duration
            with tqdm(total=round(dur, 1), unit="s", desc=f.name, leave=False,
                      disable=args.no_progress) as bar:
                res = diarize(f, embedder=embedder, num_speakers=args.num_speakers,
                              min_speakers=args.min_speakers, max_speakers=args.max_speakers,
                              namer=db.name_clusters if db else None,
                              progress=lambda s, bar=bar: bar.update(round(s, 1)))
            rttm = write_rttm(args.out / f"{f.stem}.rttm", res)
            write_json(args.out / f"{f.stem}.json", res)
            n = res.num_speakers
            print(f"{f}: {n} speaker{'' if n == 1 else 's'}, {len(res.segments)} segments "
                  f"-> {rttm}")
        except AudioError as err:
            failed += 1
            print(f"audiofcn: error: {err}", file=sys.stderr)
    if db is not None:
        db.close()
    if failed:
        print(f"audiofcn: {failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def run_enroll(args: argparse.Namespace) -> int:
    from audiofcn.cli.main import UserError
    from audiofcn.diarization.speakers import NAME
    from audiofcn.io.audio import audio_info

    _check_files(args.files)
    if not NAME.match(args.name):
        raise UserError(f"bad speaker name {args.name!r}: use letters, digits, '_', '.', '-'")
    for f in args.files:  # every file readable before the database is created or changed
        audio_info(f)
    if args.model is not None and not args.model.is_file():
        raise UserError(f"{args.model}: checkpoint not found")
    with _open_db(args.db, create=True, model=args.model) as db:
        try:
            n = db.enroll(args.name, args.files)
        except ValueError as err:
            raise UserError(str(err)) from None
        print(f"enrolled {args.name}: {len(args.files)} file(s), {n} segments; "
              f"{len(db.names())} speaker(s) in {args.db}")
    return 0


def run_identify(args: argparse.Namespace) -> int:
    _check_files([args.file])
    with _open_db(args.db, threshold=args.threshold) as db:
        ranked = db.identify_file(args.file)
        best = ranked[0] if ranked and ranked[0].score >= db.threshold else None
        if args.json:
            print(json.dumps({"file": str(args.file), "match": best.name if best else None,
                              "threshold": db.threshold,
                              "scores": [m.to_dict() for m in ranked]}))
        else:
            for m in ranked[:5]:
                print(f"{m.name}\t{m.score:.3f}")
            print(f"match: {best.name if best else 'none'} (threshold {db.threshold})")
    return 0


def demo_step(out: Path, catalog: Path) -> str:
    """Diarize a short conversation built from the shipped CC BY utterances (three unseen
    speakers; ``pretrained/diarization_demo/ATTRIBUTION.md``) and score it against the turns
    it was built from."""
    import numpy as np
    import soundfile as sf

    from audiofcn.diarization import diarize, write_json, write_rttm
    from audiofcn.diarization.embedders import default_model_path
    from audiofcn.diarization.simulate import simulate
    from audiofcn.io import save_audio

    clips = sorted((Path(default_model_path()).parent / "diarization_demo").glob("*.flac"))
    if not clips or not Path(default_model_path()).exists():
        return "demo utterances or diarizer_rcnn not shipped; skipped"
    utts = [(p.name.split("_")[0], sf.read(str(p), dtype="float32")[0]) for p in clips]
    audio, ref = simulate(utts, np.random.default_rng(0))
    dest = out / "diarization"
    save_audio(dest / "conversation.wav", audio, 16000)
    res = diarize(audio, 16000, uri="conversation")
    write_rttm(dest / "conversation.rttm", res)
    write_json(dest / "conversation.json", res)
    acc = _mapped_accuracy(ref, res.segments, len(audio) / 16000)
    return (f"{len(ref)} turns of {len({r.speaker for r in ref})} speakers "
            f"({len(audio) / 16000:.0f} s): found {res.num_speakers} speakers, "
            f"{100 * acc:.0f}% of speech time labelled right -> {dest}/conversation.rttm")


def _mapped_accuracy(ref, hyp, duration: float) -> float:
    """Share of reference speech (10-ms frames) whose hypothesis label is the one mapped to its
    speaker under the best one-to-one mapping."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    n = int(duration * 100) + 1
    rl, hl = sorted({s.speaker for s in ref}), sorted({s.speaker for s in hyp})
    r, h = np.full(n, -1), np.full(n, -1)
    for s in ref:
        r[int(s.start * 100):int(s.end * 100)] = rl.index(s.speaker)
    for s in hyp:
        h[int(s.start * 100):int(s.end * 100)] = hl.index(s.speaker)
    if not hl or not (r >= 0).any():
        return 0.0
    m = np.zeros((len(rl), len(hl)))
    np.add.at(m, (r[(r >= 0) & (h >= 0)], h[(r >= 0) & (h >= 0)]), 1)
    i, j = linear_sum_assignment(-m)
    return float(m[i, j].sum() / (r >= 0).sum())
