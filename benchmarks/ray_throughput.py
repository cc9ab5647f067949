"""Tracks per second with 1 and 2 Ray workers (``--engine ray``) against the local engine, for
tagging and for catalog indexing, on rendered songs; the inputs to the per-node cost model in
docs/scale.md.

    python benchmarks/ray_throughput.py --songs 24 --seconds 30

Songs: ``audiofcn data synth`` (seeded, rendered once into ``--work``). Tagger: the shipped
default (``audiofcn tag``'s); embedding: the shipped ``embedding_small``. Each Ray row is one
job through :func:`audiofcn.cluster.tagging.tag_sharded` or
:func:`audiofcn.cluster.indexing.add_folder_ray` on an already-started local Ray instance
(``ray.init(num_cpus=max(--workers))``), so actor start-up (model load) is inside the time,
Ray start-up is not. Wall-clock seconds: worker parallelism is what is measured, so the
machine's other load shows up in these numbers (``os.getloadavg`` is printed next to them);
"tracks per worker CPU s" (CPU seconds inside the workers' ``process``) does not.
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--shard-size", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "ray_throughput")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import ray
    import torch

    from audiofcn.cli.tag import DEFAULT_TAGGER, load_tagger
    from audiofcn.cluster.engine import connect
    from audiofcn.cluster.indexing import add_folder_ray
    from audiofcn.cluster.tagging import tag_sharded
    from audiofcn.data.synth import SynthConfig, synth_catalog
    from audiofcn.index import Catalog
    from audiofcn.tagging import tag_files

    torch.set_num_threads(1)
    songs = args.work / f"songs_{args.songs}x{args.seconds:g}s"
    if not (songs / "manifest.jsonl").exists():
        synth_catalog(songs, args.songs, seed=7, config=SynthConfig(duration=args.seconds),
                      progress=False, workers=1)
    files = sorted((songs / "audio").glob("*.wav"))
    model = load_tagger(DEFAULT_TAGGER)
    emb = ROOT / "src" / "audiofcn" / "pretrained" / "embedding_small.safetensors"
    rows = []

    marks: list[float] = []
    cpu: list[float] = []
    clock = {"t0": 0.0}

    def mark(_: int, cpu_s: float) -> None:
        marks.append(time.perf_counter() - clock["t0"])
        cpu.append(cpu_s)

    def row(task: str, engine: str, workers: int, seconds: float,
            local_cpu: float | None = None) -> None:
        # steady state: tracks after the first finished shard over the time since it finished
        # (leaves out actor start-up and model loading)
        steady = None
        if len(marks) > 1 and marks[-1] > marks[0]:
            steady = round((len(marks) - 1) * args.shard_size / (marks[-1] - marks[0]), 3)
        first = round(marks[0], 1) if marks else None
        if local_cpu:
            cpu.append(local_cpu)
        per_cpu = round(len(files) / sum(cpu), 3) if cpu else None
        marks.clear()
        cpu.clear()
        rows.append({"task": task, "engine": engine, "workers": workers,
                     "seconds": round(seconds, 1), "tracks_per_s": round(len(files) / seconds, 3),
                     "first_shard_s": first, "steady_tracks_per_s": steady,
                     "tracks_per_worker_cpu_s": per_cpu,
                     "audio_x_realtime": round(len(files) * args.seconds / seconds, 1),
                     "load1": round(os.getloadavg()[0], 1)})
        print(rows[-1], flush=True)

    t0, c0 = time.perf_counter(), time.process_time()
    n = sum(1 for r in tag_files(model, files) if not isinstance(r, Exception))
    row("tag", "local", 1, time.perf_counter() - t0, time.process_time() - c0)
    assert n == len(files)
    with tempfile.TemporaryDirectory(dir=args.work) as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        with Catalog.create(Path(tmp) / "cat", emb, threads=1) as cat:
            cat.add_folder(songs / "audio")
        row("index add", "local", 1, time.perf_counter() - t0, time.process_time() - c0)
    counts = [int(x) for x in args.workers.split(",")]
    connect(None, num_cpus=max(counts))
    for w in counts:
        with tempfile.TemporaryDirectory(dir=args.work) as tmp:
            t0 = clock["t0"] = time.perf_counter()
            run = tag_sharded(model, files, Path(tmp) / "shards", shard_size=args.shard_size,
                              workers=w, on_shard=mark)
            row("tag", "ray", w, time.perf_counter() - t0)
            assert len(run.results) == len(files)
            t0 = clock["t0"] = time.perf_counter()
            with Catalog.create(Path(tmp) / "cat", emb, threads=1) as cat:
                rep = add_folder_ray(cat, songs / "audio", shard_size=args.shard_size,
                                     workers=w, on_shard=mark)
            row("index add", "ray", w, time.perf_counter() - t0)
            assert len(rep.added) == len(files)
            shutil.rmtree(tmp, ignore_errors=True)
    ray.shutdown()
    print(f"\n{len(files)} songs x {args.seconds:g} s; shards of {args.shard_size}; wall clock; "
          f"{os.cpu_count()} CPUs shared\n")
    print("| task | engine | workers | job s | tracks/s (job) | x real time | speed-up vs 1 "
          "worker | first shard s | tracks/s after it | tracks per worker CPU s | load (1 min) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        one = next(x for x in rows if x["task"] == r["task"] and x["engine"] == r["engine"]
                   and x["workers"] == 1)
        print(f"| {r['task']} | {r['engine']} | {r['workers']} | {r['seconds']} | "
              f"{r['tracks_per_s']} | {r['audio_x_realtime']} | "
              f"{one['seconds'] / r['seconds']:.2f}x | {r['first_shard_s'] or '-'} | "
              f"{r['steady_tracks_per_s'] or '-'} | {r['tracks_per_worker_cpu_s'] or '-'} | "
              f"{r['load1']} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"songs": len(files), "seconds": args.seconds,
                                         "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
