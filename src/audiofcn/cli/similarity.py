"""``audiofcn index …``, ``audiofcn search`` and ``audiofcn serve``: segment-level similarity
search over a catalog folder (FAISS + SQLite, see :mod:`audiofcn.index`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from audiofcn.cli.checks import nonnegative_float, positive_float, positive_int
from audiofcn.cli.main import UserError

PRETRAINED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT_MODEL = PRETRAINED / "embedding_small.safetensors"


def register(sub: argparse._SubParsersAction) -> None:
    idx = sub.add_parser("index", help="build and manage a similarity-search catalog")
    isub = idx.add_subparsers(dest="index_command", metavar="ACTION")
    isub.required = True

    def db_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", required=True, type=Path, help="catalog folder")
        p.add_argument("--threads", type=positive_int, default=1,
                       help="FAISS/torch threads (default 1)")

    p = isub.add_parser("add", help="add (or update) every audio file under DIR")
    p.add_argument("dir", type=Path)
    db_arg(p)
    p.add_argument("--model", type=Path, default=None,
                   help="embedding model for a NEW catalog (default: the shipped one)")
    p.add_argument("--hop", type=_positive, default=None,
                   help="segment hop in seconds (new catalog)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="audiofcn manifest with tags (default DIR/manifest.jsonl)")
    p.add_argument("--approx-threshold", type=_positive_int, default=100_000,
                   help="segments above which an approximate index is used (new catalog)")
    p.add_argument("--approx-kind", choices=["ivfpq", "hnsw"], default="ivfpq")
    from audiofcn.cli.cluster import add_engine_args

    add_engine_args(p)  # --engine {local,ray}, --address, ...
    p.set_defaults(func=cmd_add)
    p = isub.add_parser("info", help="summarise a catalog")
    db_arg(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--tracks", action="store_true", help="also list the tracks")
    p.set_defaults(func=cmd_info)
    p = isub.add_parser("remove", help="remove a track (by catalog id or file path)")
    p.add_argument("track")
    db_arg(p)
    p.set_defaults(func=cmd_remove)
    p = isub.add_parser("rebuild", help="rebuild the FAISS index from the stored embeddings")
    db_arg(p)
    p.set_defaults(func=cmd_rebuild)
    from audiofcn.cli.cluster import register_build_ivf

    register_build_ivf(isub, db_arg)  # index build-ivf: on-disk IVF-PQ for large catalogs

    p = sub.add_parser("search", help="find catalog segments that sound like a query clip")
    p.add_argument("query", type=Path, help="audio file")
    db_arg(p)
    p.add_argument("-k", type=positive_int, default=10, help="tracks to return (default 10)")
    p.add_argument("--per-track", type=positive_int, default=3, help="segments shown per track")
    p.add_argument("--start", type=nonnegative_float, default=None, help="query from this second")
    p.add_argument("--end", type=positive_float, default=None, help="query up to this second")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", help="web page to search a catalog by listening")
    db_arg(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000, help="1-65535 (default 8000)")
    p.add_argument("--max-upload-mb", type=_positive, default=20.0)
    p.add_argument("--max-upload-seconds", type=_positive, default=60.0)
    p.add_argument("--max-parallel-uploads", type=_port_count, default=4,
                   help="uploads received/processed at once; others wait, then get 503 "
                        "(bounds upload disk use; default 4)")
    p.set_defaults(func=cmd_serve)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"port must be a number from 1 to 65535, got {text!r}")
    return int(text)


def _port_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 1024, got {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(text)


def _positive(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _open(db: Path, writable: bool = False, threads: int = 1) -> Any:
    import torch

    from audiofcn.index import Catalog, CatalogError

    torch.set_num_threads(threads)
    try:
        return Catalog.open(db, writable=writable, threads=threads)
    except CatalogError as err:
        raise UserError(str(err)) from None


def cmd_add(args: argparse.Namespace) -> int:
    import torch

    from audiofcn.index import Catalog, CatalogError

    torch.set_num_threads(args.threads)
    if not args.dir.is_dir():
        raise UserError(f"{args.dir}: not a folder")
    if args.manifest is not None:  # an explicit manifest must be usable, not silently ignored
        from audiofcn.io import read_manifest

        if not args.manifest.is_file():
            raise UserError(f"{args.manifest}: manifest not found")
        read_manifest(args.manifest)  # ManifestError: one line naming the file and line
    try:
        if (args.db / Catalog.DB).exists():
            if args.model is not None:
                print(f"note: {args.db} exists; --model is ignored (a catalog keeps the model "
                      "it was built with)", file=sys.stderr)
            cat = Catalog.open(args.db, writable=True, threads=args.threads)
        else:
            model = args.model or DEFAULT_MODEL
            if not Path(model).exists():
                raise UserError(f"{model}: embedding model not found (pass --model)")
            try:
                cat = Catalog.create(args.db, model, hop_seconds=args.hop,
                                     approx_threshold=args.approx_threshold,
                                     approx_kind=args.approx_kind, threads=args.threads)
            except CatalogError:
                if not (args.db / Catalog.DB).is_file():
                    raise
                # Another `index add` created it since the check above: add to theirs (or
                # get the same "busy" error as on any catalog that is being changed).
                cat = Catalog.open(args.db, writable=True, threads=args.threads)
        with cat:
            if getattr(args, "engine", "local") == "ray":
                from audiofcn.cli.cluster import add_folder_ray

                rep = add_folder_ray(cat, args)
            else:
                rep = cat.add_folder(args.dir, progress=sys.stderr.isatty(),
                                     manifest=args.manifest)
            info = cat.info()
    except CatalogError as err:
        raise UserError(str(err)) from None
    rate = rep.audio_seconds / max(rep.seconds, 1e-9)
    print(f"added {len(rep.added)}, updated {len(rep.updated)}, unchanged {len(rep.skipped)}, "
          f"failed {len(rep.failed)} files; {rep.segments} segments from "
          f"{rep.audio_seconds:.1f} s of audio in {rep.seconds:.1f} s ({rate:.0f}x real time); "
          f"catalog: {info['tracks']} tracks, {info['segments']} segments, "
          f"{info['index_kind']} index")
    if rep.failed:  # same outcome as every folder command: list the failures, exit 1
        print(f"{len(rep.failed)} file(s) failed:", file=sys.stderr)
        for line in rep.failed:
            print(f"  {line}", file=sys.stderr)
        return 1
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    with _open(args.db, threads=args.threads) as cat:
        info = cat.info()
        tracks = cat.tracks() if args.tracks else None
    if args.json:
        print(json.dumps({**info, **({"track_list": tracks} if tracks is not None else {})},
                         indent=2))
        return 0
    for k, v in info.items():
        print(f"{k:16s} {v}")
    for t in tracks or []:
        print(f"{t['track_id']:6d}  {t['duration']:7.1f} s  {t['path']}  {' '.join(t['tags'])}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from audiofcn.index import CatalogError

    with _open(args.db, writable=True, threads=args.threads) as cat:
        try:
            n = cat.remove_track(args.track)
        except CatalogError as err:
            raise UserError(str(err)) from None
        print(f"removed {args.track} ({n} segments); {cat.num_tracks()} tracks left")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from audiofcn.index import CatalogError

    with _open(args.db, writable=True, threads=args.threads) as cat:
        try:
            cat.rebuild()
        except CatalogError as err:
            raise UserError(str(err)) from None
        info = cat.info()
    print(f"rebuilt {info['index_kind']} index over {info['index_vectors']} segments")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    if args.k < 1:
        raise UserError("-k must be at least 1")
    if args.start is not None and args.end is not None and args.end <= args.start:
        raise UserError(f"--end ({args.end}) must be after --start ({args.start})")
    if not args.query.exists():
        raise UserError(f"{args.query}: file not found")
    with _open(args.db, threads=args.threads) as cat:
        results = cat.search_file(args.query, k=args.k, start=args.start, end=args.end,
                                  per_track=args.per_track)
    query = {"path": str(args.query), "start": args.start, "end": args.end}
    if args.json:
        print(json.dumps({"query": query, "results": [r.to_dict() for r in results]},
                         indent=2))
        return 0
    span = "" if args.start is None and args.end is None else \
        f" [{args.start or 0:.2f}-{'end' if args.end is None else f'{args.end:.2f}'} s]"
    print(f"query {args.query}{span}: {len(results)} tracks")
    for rank, r in enumerate(results, 1):
        tags = f"  tags: {', '.join(r.tags)}" if r.tags else ""
        print(f"{rank:3d}. {r.score:.3f}  {r.path}{tags}")
        for s in r.segments:
            print(f"       {s.start:7.2f}-{s.end:7.2f} s  {s.score:.3f}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from audiofcn.server.app import ServerConfig, create_app

    with _open(args.db, threads=args.threads):
        pass  # fail early with a one-line error when the catalog is missing or broken
    app = create_app(ServerConfig(db=args.db, max_upload_bytes=int(args.max_upload_mb * 2**20),
                                  max_upload_seconds=args.max_upload_seconds,
                                  max_parallel_uploads=args.max_parallel_uploads,
                                  threads=args.threads))
    print(f"serving {args.db} on http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def similarity_step(out: Path, catalog: Path) -> str:
    """Demo: index the demo catalog, then search with a transformed excerpt of one song."""
    import torch

    from audiofcn.data import transforms as T
    from audiofcn.index import Catalog
    from audiofcn.io import load_audio, read_manifest, save_audio

    torch.set_num_threads(1)
    db = out / "similarity_catalog"
    if (db / Catalog.DB).exists():
        import shutil

        shutil.rmtree(db)
    with Catalog.create(db, DEFAULT_MODEL, threads=1) as cat:
        rep = cat.add_folder(catalog / "audio", manifest=catalog / "manifest.jsonl")
        recs = read_manifest(catalog / "manifest.jsonl")
        src = recs[3 % len(recs)]
        audio, sr = load_audio(src.resolve(catalog), sr=cat.embedder.sample_rate)
        x = audio[0, int(2.0 * sr):int(5.5 * sr)]
        g = torch.Generator().manual_seed(0)
        q = T.add_noise(T.random_eq(T.pitch_shift(x, 0.5), g, 6.0), 25.0, g)
        q = T.codec(q, sr, 16.0)
        save_audio(out / "similarity_query.wav", q / q.abs().max().clamp_min(1.0), sr)
        res = cat.search_file(out / "similarity_query.wav", k=5)
    names = [Path(r.path).name for r in res]
    src_name = Path(src.path).name
    rank = f"source ranked #{names.index(src_name) + 1}" if src_name in names else \
        "source not in the top 5"
    top = res[0]
    return (f"indexed {len(rep.added)} songs ({rep.segments} segments) -> {db}; "
            f"pitch-shifted+EQ+noise+codec excerpt of {src_name} [2.0-5.5 s]: {rank}; "
            f"top hit {names[0]} at {top.segments[0].start:.1f}-{top.segments[0].end:.1f} s "
            f"(score {top.score:.3f})")
