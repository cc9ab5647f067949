"""On-disk IVF-PQ at 10^6-10^7 vectors: recall@10 against exact search, ms/query, memory,
build time (train on a sample, fill shards, merge on disk: :mod:`audiofcn.index.ondisk`).

    python benchmarks/index_scale.py --n 1e6
    nice -n 5 python benchmarks/index_scale.py --n 1e7 --nprobe 16,32,64 --json runs/s7.json

Vectors: ``benchmarks/index.py``'s clustered unit vectors (1,000 Gaussian clusters of different
spreads; d=128, the dimension of the shipped catalog embedding), written once to a float32
memmap under ``--work`` and read shard by shard, so building never holds them all in RAM.
Queries come from the same distribution (not from the catalog). Recall@10 = share of the
exact top-10 (``IndexFlatIP`` over the same memmap, the peer) that IVF-PQ returns.
ms/query: one query at a time, process CPU time on one thread (``time.process_time``; a
shared machine's wall clock is noise). Memory: the RAM part of the index (coarse quantiser,
PQ codebooks: ``index.faiss``), the memory-mapped inverted lists (``lists.ivfdata``), and the
resident-set growth of this process from opening the index to the end of its queries.
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/faiss start their thread pools

import importlib.util  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from audiofcn.index.ondisk import (  # noqa: E402
    IVFPQParams,
    RefinedIndex,
    build_ondisk,
    open_ondisk,
    set_nprobe,
)

_spec = importlib.util.spec_from_file_location("bench_index", ROOT / "benchmarks" / "index.py")
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)  # type: ignore[union-attr]
clustered_vectors, recall = _bench.clustered_vectors, _bench.recall


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def base_vectors(work: Path, n: int, d: int, clusters: int, chunk: int) -> np.ndarray:
    """The n×d memmap, generated chunk by chunk (seed = chunk number) on first use."""
    path = work / f"base_{n}_{d}_{clusters}.f32"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
        for j, i in enumerate(range(0, n, chunk)):
            m = min(chunk, n - i)
            mm[i:i + m] = clustered_vectors(m, d, clusters, seed=1000 + j)
        mm.flush()
        del mm
        os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def exact_search(base: np.ndarray, q: np.ndarray, k: int, chunk: int) -> np.ndarray:
    """Exact top-k ids by inner product, streaming the memmap in chunks."""
    import faiss

    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.full((len(q), k), -1, np.int64)
    for i in range(0, len(base), chunk):
        flat = faiss.IndexFlatIP(base.shape[1])
        flat.add(np.ascontiguousarray(base[i:i + chunk]))
        s, ids = flat.search(q, k)
        s_all = np.concatenate([best_s, s], 1)
        i_all = np.concatenate([best_i, ids + i], 1)
        top = np.argsort(-s_all, axis=1)[:, :k]
        best_s = np.take_along_axis(s_all, top, 1)
        best_i = np.take_along_axis(i_all, top, 1)
    return best_i


def exact_peer_ms(base: np.ndarray, q: np.ndarray, k: int, chunk: int) -> float:
    """The peer: exact ``IndexFlatIP`` with all vectors in RAM, one query at a time (CPU ms)."""
    import faiss

    flat = faiss.IndexFlatIP(base.shape[1])
    for i in range(0, len(base), chunk):
        flat.add(np.ascontiguousarray(base[i:i + chunk]))
    flat.search(q[:1], k)
    c0 = time.process_time()
    for i in range(len(q)):
        flat.search(q[i:i + 1], k)
    return (time.process_time() - c0) * 1000 / len(q)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e6)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=1000, help="for recall (batched)")
    ap.add_argument("--timed-queries", type=int, default=200, help="for ms/query (one by one)")
    ap.add_argument("--flat-queries", type=int, default=20, help="exact ms/query sample")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--nlist", type=int, default=None, help="default 2^round(log2 √n)")
    ap.add_argument("--m", type=int, default=32)
    ap.add_argument("--nbits", type=int, default=8)
    ap.add_argument("--opq", action="store_true")
    ap.add_argument("--hnsw-quantizer", action="store_true")
    ap.add_argument("--train-size", type=int, default=None)
    ap.add_argument("--nprobe", default="8,16,32,64")
    ap.add_argument("--refine-factors", default="8,32",
                    help="re-rank k x these many PQ candidates (rows for each, and PQ only)")
    ap.add_argument("--shard", type=float, default=2.5e5, help="vectors per shard")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "index_scale")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--exact-only", action="store_true", help="only time the exact peer")
    ap.add_argument("--reuse", action="store_true",
                    help="search an index this command built before (no build times)")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(1)
    n, shard = int(args.n), int(args.shard)
    factors = [int(f) for f in args.refine_factors.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    base = base_vectors(args.work, n, args.d, args.clusters, shard)
    q = clustered_vectors(args.queries, args.d, args.clusters, seed=1)
    gen_s = time.perf_counter() - t0
    c0 = time.process_time()
    exact = exact_search(base, q, args.k, shard)
    gt_cpu = time.process_time() - c0
    flat_ms = exact_peer_ms(base, q[:args.flat_queries], args.k, shard)
    if args.exact_only:
        print(f"{n:,} vectors, d={args.d}: exact IndexFlatIP (in RAM) {flat_ms:.1f} ms/query one "
              f"at a time, 1 thread")
        return 0
    params = IVFPQParams(nlist=args.nlist, m=args.m, nbits=args.nbits, opq=args.opq,
                         nprobe=8, train_size=args.train_size,
                         refine_factor=max(factors),
                         hnsw_quantizer=args.hnsw_quantizer).resolved(n)
    rng = np.random.default_rng(0)
    sample = np.ascontiguousarray(base[np.sort(rng.choice(n, params.train_size,
                                                          replace=False))])
    chunks = ((np.arange(i, min(i + shard, n), dtype=np.int64),
               np.ascontiguousarray(base[i:i + shard])) for i in range(0, n, shard))
    out = args.work / f"ivf_{n}_{params.factory(args.d).replace(',', '_')}"
    c0, t0 = time.process_time(), time.perf_counter()
    if args.reuse and (out / "header.json").exists():  # search rows only, same index
        times = {"train_s": float("nan"), "fill_s": float("nan"), "merge_s": float("nan")}
    else:
        times = build_ondisk(out, sample, chunks, params)
    build_cpu, build_wall = time.process_time() - c0, time.perf_counter() - t0
    del sample
    ram_mb = (out / "index.faiss").stat().st_size / 2**20
    lists_mb = (out / "lists.ivfdata").stat().st_size / 2**20
    refine_mb = sum((out / f).stat().st_size for f in ("refine.ids", "refine.f16")
                    if (out / f).exists()) / 2**20
    rss0 = rss_mb()
    index = open_ondisk(out)
    rows = []
    for factor in sorted({0, *factors}) if isinstance(index, RefinedIndex) else [0]:
        for nprobe in (int(p) for p in args.nprobe.split(",")):
            set_nprobe(index, nprobe)
            if isinstance(index, RefinedIndex):
                index.k_factor = factor
            _, got = index.search(q, args.k)
            c0 = time.process_time()
            for i in range(args.timed_queries):
                index.search(q[i:i + 1], args.k)
            ms = (time.process_time() - c0) * 1000 / args.timed_queries
            rows.append({"nprobe": nprobe, "refine_factor": factor,
                         "recall@10": round(recall(got, exact), 4),
                         "ms_per_query": round(ms, 3)})
    rss_growth = rss_mb() - rss0
    res = {"n": n, "d": args.d, "factory": params.factory(args.d), "params": params.to_dict(),
           "shards": -(-n // shard), "generate_s": round(gen_s, 1),
           "exact_ms_per_query": round(flat_ms, 2),
           "exact_ground_truth_cpu_s": round(gt_cpu, 1),
           "exact_bytes_mb": round(n * args.d * 4 / 2**20),
           "build_wall_s": round(build_wall, 1), "build_cpu_s": round(build_cpu, 1),
           **{k: round(v, 1) for k, v in times.items()},
           "index_ram_mb": round(ram_mb, 1), "lists_mb": round(lists_mb, 1),
           "refine_mb": round(refine_mb, 1),
           "rss_growth_mb": round(rss_growth, 1), "rows": rows}
    print(f"\n{n:,} vectors, d={args.d}, {res['factory']}, {res['shards']} shards, train "
          f"sample {params.train_size:,}; 1 thread; build {build_wall:.0f} s wall / "
          f"{build_cpu:.0f} s CPU (train {times['train_s']:.0f}, fill {times['fill_s']:.0f}, "
          f"merge {times['merge_s']:.0f} s wall); index RAM {ram_mb:.1f} MB + lists "
          f"{lists_mb:.0f} MB + re-rank vectors {refine_mb:.0f} MB on disk (mmap; RSS grew "
          f"{rss_growth:.0f} MB over the queries); "
          f"exact peer (IndexFlatIP in RAM): {res['exact_bytes_mb']} MB of vectors, {flat_ms:.1f} "
          f"ms/query one at a time, ground truth for {len(q)} queries {gt_cpu:.0f} CPU s batched\n")
    print("| nprobe | re-rank | recall@10 | ms/query (1 thread) | speed-up vs exact |\n"
          "|---|---|---|---|---|")
    for r in rows:
        rr = f"{r['refine_factor']}k fp16" if r["refine_factor"] else "PQ only"
        print(f"| {r['nprobe']} | {rr} | {r['recall@10']:.3f} | {r['ms_per_query']:.3f} | "
              f"{flat_ms / r['ms_per_query']:.0f}x |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
