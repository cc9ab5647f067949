"""``--engine ray`` for ``audiofcn tag`` and ``audiofcn index add`` (see :mod:`audiofcn.cluster`).

Ray is imported only here, only when ``--engine ray`` is chosen."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audiofcn.cli.main import UserError


def add_engine_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engine (catalogs beyond one machine, docs/scale.md)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: Ray Data workers, sharded output "
                        "that resumes after an interruption (pip install 'audiofcn[cluster]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster to join (auto, HOST:6379, ray://HOST:10001); default: start "
                        "a local Ray instance")
    g.add_argument("--workers", type=int, default=None,
                   help="Ray workers (default: one per CPU of the cluster)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs per Ray worker (e.g. 1, or 0.25 to pack four per GPU)")
    g.add_argument("--shard-size", type=int, default=16, help="files per shard (default 16)")


def _check_engine_args(args: argparse.Namespace) -> None:
    if args.workers is not None and args.workers < 1:
        raise UserError("--workers must be at least 1")
    if args.shard_size < 1:
        raise UserError("--shard-size must be at least 1")
    if args.gpus_per_worker < 0:
        raise UserError("--gpus-per-worker must not be negative")


def _connect(args: argparse.Namespace) -> dict[str, float]:
    from audiofcn.cluster.engine import ClusterError, connect

    try:
        return connect(args.address, num_cpus=None if args.address else args.workers)
    except ClusterError as err:
        raise UserError(str(err)) from None


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files and folders as the local engine finds them; a ``.jsonl`` input is an audiofcn
    manifest whose records' files are tagged (paths relative to the manifest's folder)."""
    from audiofcn.io import ManifestError, read_manifest
    from audiofcn.io.files import find_audio_files

    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise UserError(f"{item}: no such file or folder")
        if p.suffix.lower() == ".jsonl":
            try:
                files += [r.resolve(p.parent) for r in read_manifest(p)]
            except ManifestError as err:
                raise UserError(str(err)) from None
        else:
            found, problems = find_audio_files([item])
            if problems:
                raise UserError(f"{problems[0]}" + (f" (and {len(problems) - 1} more)"
                                                    if len(problems) > 1 else ""))
            files += found
    return files


def run_tag_ray(args: argparse.Namespace) -> int:
    from audiofcn.cli.tag import _rows, load_tagger, report_failures, write_results
    from audiofcn.cluster.tagging import tag_sharded, write_parquet

    _check_engine_args(args)
    if not args.out:
        raise UserError("--engine ray writes its results to a file: pass --out "
                        "tags.parquet|.csv|.json")
    out = Path(args.out)
    if out.suffix.lower() not in (".csv", ".json", ".parquet"):
        raise UserError(f"{out}: output must end in .parquet, .csv or .json")
    if args.top < 1:
        raise UserError("--top must be at least 1")
    files = expand_inputs(args.inputs)
    if not files:
        raise UserError(f"no audio files found in {', '.join(args.inputs)}")
    model = load_tagger(args.model)
    hop = int(args.hop * model.config.sample_rate) if args.hop else None
    res = _connect(args)
    run = tag_sharded(model, files, out.with_name(out.name + ".shards"), args.batch_size, hop,
                      args.shard_size, args.workers, args.gpus_per_worker)
    labels = list(model.config.labels)
    if out.suffix.lower() == ".parquet":
        write_parquet(out, run.results, labels, args.top)
    else:
        write_results(out, _rows(run.results, args.top), labels, run.failures,
                      model.model_name)
    if run.plan is not None:
        run.plan.remove()
    print(f"tagged {len(run.results)} file(s) -> {out} (ray: {run.shards} shards, "
          f"{run.computed} computed, {run.resumed} resumed; cluster {_cpus(res)})")
    return report_failures(run.failures)


def _cpus(res: dict[str, Any]) -> str:
    gpus = f", {int(res['GPU'])} GPU" if res.get("GPU") else ""
    return f"{int(res.get('CPU', 0))} CPU{gpus}"


def add_folder_ray(cat: Any, args: argparse.Namespace) -> Any:
    """``index add --engine ray``: returns the :class:`~audiofcn.index.AddReport`."""
    from audiofcn.cluster.indexing import add_folder_ray as add

    _check_engine_args(args)
    _connect(args)
    return add(cat, args.dir, manifest=args.manifest, shard_size=args.shard_size,
               workers=args.workers, gpus_per_worker=args.gpus_per_worker)


def register_build_ivf(isub: argparse._SubParsersAction,
                       db_arg: Any) -> None:
    """``audiofcn index build-ivf``: the on-disk IVF-PQ index for large catalogs."""
    p = isub.add_parser("build-ivf", help="build the on-disk IVF-PQ index (large catalogs; "
                        "read-only opens search with it): trained on a sample, filled in "
                        "shards, merged (docs/scale.md)")
    db_arg(p)
    p.add_argument("--nlist", type=int, default=None, help="IVF lists (default 2^round(log2 √N))")
    p.add_argument("--m", type=int, default=32, help="PQ sub-quantisers (bytes a vector)")
    p.add_argument("--nbits", type=int, default=8, help="bits per PQ code (default 8)")
    p.add_argument("--opq", action="store_true", help="learn an OPQ rotation first")
    p.add_argument("--hnsw-quantizer", action="store_true",
                   help="HNSW graph as the coarse quantiser (for nlist of 65536 and more)")
    p.add_argument("--nprobe", type=int, default=32, help="lists scanned per query")
    p.add_argument("--train-size", type=int, default=None, help="training sample size")
    p.add_argument("--refine-factor", type=int, default=32,
                   help="re-rank k x this many PQ candidates with float16 vectors kept on disk "
                        "(d*2 bytes a segment); 0: PQ scores only")
    p.add_argument("--vectors-per-shard", type=int, default=1_000_000)
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: fill the shards in Ray tasks")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("--workers", type=int, default=None, help="Ray tasks in flight / 2")
    p.set_defaults(func=cmd_build_ivf)


def cmd_build_ivf(args: argparse.Namespace) -> int:
    from audiofcn.cli.similarity import _open
    from audiofcn.index import CatalogError
    from audiofcn.index.ondisk import IVFPQParams, build_catalog_ivf, local_filler, ray_filler

    for name in ("nlist", "train_size", "workers"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.refine_factor < 0:
        raise UserError("--refine-factor must not be negative")
    if args.m < 1 or args.nprobe < 1 or args.vectors_per_shard < 1:
        raise UserError("--m, --nprobe and --vectors-per-shard must be at least 1")
    if not 1 <= args.nbits <= 16:
        raise UserError("--nbits must be between 1 and 16")
    params = IVFPQParams(nlist=args.nlist, m=args.m, nbits=args.nbits, opq=args.opq,
                         nprobe=args.nprobe, train_size=args.train_size,
                         refine_factor=args.refine_factor, hnsw_quantizer=args.hnsw_quantizer)
    filler = local_filler
    if args.engine == "ray":
        _check_engine_args(argparse.Namespace(workers=args.workers, shard_size=1,
                                              gpus_per_worker=0.0))
        _connect(argparse.Namespace(address=args.address, workers=args.workers))
        filler = ray_filler(args.workers)
    with _open(args.db, writable=True, threads=args.threads) as cat:
        if cat.dim % args.m:
            raise UserError(f"--m {args.m} must divide the embedding dimension {cat.dim}")
        try:
            rep = build_catalog_ivf(cat, params, args.vectors_per_shard, filler)
        except CatalogError as err:
            raise UserError(str(err)) from None
    p = rep["params"]
    print(f"built IVF{p['nlist']},PQ{p['m']}x{p['nbits']}{' +OPQ' if p['opq'] else ''} over "
          f"{rep['segments']} segments -> {args.db}/ivf (train {rep['train_s']:.1f} s, fill "
          f"{rep['fill_s']:.1f} s, merge {rep['merge_s']:.1f} s); searches of read-only opens "
          "use it until the catalog changes")
    return 0
