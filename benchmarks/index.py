"""Similarity index benchmark: approximate vs exact FAISS search at catalog scale, and
indexing throughput. One thread everywhere (``faiss.omp_set_num_threads(1)``,
``torch.set_num_threads(1)``); prints markdown tables.

    python benchmarks/index.py                 # 1M vectors, d=128
    python benchmarks/index.py --n 200000 --kinds ivfpq,hnsw

Vectors are random but clustered like real embeddings: ``--clusters`` Gaussian clusters of
different spreads on the unit sphere; queries come from the same distribution (not from the
catalog). Recall@10 = share of the exact top-10 (``IndexFlatIP``, the peer) that the
approximate index returns. ms/query is measured one query at a time (interactive latency).
Memory = the serialised index size (what the catalog writes and loads).

Times are process CPU seconds (``time.process_time``): with one thread that equals wall time on
an idle machine and stays meaningful on a shared one (this repository's CI box is shared).
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy/faiss/torch start their thread pools

import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from audiofcn.index.store import IndexParams, build_index, configure_search  # noqa: E402


def clustered_vectors(n: int, d: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(12345).standard_normal((clusters, d)).astype(np.float32)
    spread = np.random.default_rng(54321).uniform(0.3, 0.8, clusters).astype(np.float32)
    out = np.empty((n, d), np.float32)
    for i in range(0, n, 100_000):  # in chunks: keeps the peak memory at ~1x the output
        m = min(100_000, n - i)
        c = rng.integers(0, clusters, m)
        x = centers[c] + spread[c, None] * rng.standard_normal((m, d), dtype=np.float32)
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def per_query_ms(index: object, q: np.ndarray, k: int) -> tuple[float, np.ndarray]:
    ids = np.empty((len(q), k), np.int64)
    t0 = time.process_time()
    for i in range(len(q)):
        ids[i] = index.search(q[i:i + 1], k)[1][0]
    return (time.process_time() - t0) * 1000 / len(q), ids


def recall(approx: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(e)) / len(e)
                          for a, e in zip(approx, exact, strict=True)]))


def index_bytes(index: object) -> int:
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def ann_table(args: argparse.Namespace) -> None:
    import faiss

    faiss.omp_set_num_threads(1)
    t0 = time.process_time()
    x = clustered_vectors(args.n, args.d, args.clusters, seed=0)
    q = clustered_vectors(args.queries, args.d, args.clusters, seed=1)
    ids = np.arange(args.n, dtype=np.int64)
    gen_s = time.process_time() - t0
    t0 = time.process_time()
    flat = build_index(x, ids, IndexParams("flat"))
    flat_build = time.process_time() - t0
    t0 = time.process_time()
    _, exact = flat.search(q, args.k)  # ground truth (batched)
    gt_s = time.process_time() - t0
    flat_ms, _ = per_query_ms(flat, q[: args.flat_queries], args.k)
    print(f"\n{args.n:,} vectors, d={args.d}, {args.clusters} clusters; {args.queries} "
          f"queries; generation {gen_s:.1f} s, exact ground truth {gt_s:.1f} s; 1 thread\n")
    print("| index | params | build s | memory MB | recall@10 | ms/query | speed-up vs "
          "exact |\n|---|---|---|---|---|---|---|")
    print(f"| exact IndexFlatIP (peer) | - | {flat_build:.1f} | "
          f"{index_bytes(flat) / 2**20:.0f} | 1.000 | {flat_ms:.2f} | 1.0x |", flush=True)
    del flat
    for kind in args.kinds.split(","):
        params = IndexParams(kind, nlist=args.nlist)
        t0 = time.process_time()
        index = build_index(x, ids, params)
        build_s = time.process_time() - t0
        mem = index_bytes(index) / 2**20
        if kind == "ivfpq":
            nlist = faiss.extract_index_ivf(faiss.downcast_index(index.index).base_index).nlist
            sweep = [(int(p), int(r)) for r in args.refine.split(",")
                     for p in args.nprobe.split(",")]
        else:
            sweep = [(int(v), 0) for v in args.ef.split(",")]
        for v, rf in sweep:
            if kind == "ivfpq":
                params.nprobe, params.refine_factor = v, rf
                label = f"nlist={nlist}, PQ{args.d // 4}x8, nprobe={v}, re-rank {rf}k exact"
            else:
                params.ef_search = v
                label = f"M={params.hnsw_m}, efSearch={v}"
            configure_search(index, params)
            ms, got = per_query_ms(index, q, args.k)
            print(f"| {kind} | {label} | {build_s:.1f} | {mem:.0f} | {recall(got, exact):.3f} | "
                  f"{ms:.3f} | {flat_ms / ms:.0f}x |", flush=True)
        del index


def throughput_table(args: argparse.Namespace) -> None:
    """Seconds of audio indexed per second: decode + embed + SQLite + FAISS write."""
    import soundfile as sf
    import torch

    from audiofcn.index import Catalog
    from audiofcn.models.embedding import EmbeddingNet

    torch.set_num_threads(1)
    model_path = Path(__file__).resolve().parents[1] / "src/audiofcn/pretrained" / \
        "embedding_small.safetensors"
    with tempfile.TemporaryDirectory() as tmp:
        if not model_path.exists():
            model_path = EmbeddingNet().save_pretrained(Path(tmp) / "m.safetensors")
        music = Path(tmp) / "music"
        music.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.tp_files):
            sf.write(music / f"t{i}.wav", (0.1 * rng.standard_normal(int(30 * 16000))
                                           ).astype(np.float32), 16000)
        with Catalog.create(Path(tmp) / "cat", model_path, threads=1) as cat:
            t0 = time.process_time()
            rep = cat.add_folder(music)
            add_cpu = time.process_time() - t0
        net = EmbeddingNet.from_pretrained(model_path)
        seg = torch.randn(32, net.config.segment_samples) * 0.1
        with torch.inference_mode():
            net(seg[:2])
            t0 = time.process_time()
            net(seg)
            fwd = time.process_time() - t0
    hop = net.config.segment_seconds / 2
    print(f"\nIndexing throughput ({model_path.name}, {net.num_parameters():,} parameters, "
          f"segments {net.config.segment_seconds} s, hop {hop} s, 1 thread)\n")
    print("| stage | audio s per CPU s |\n|---|---|")
    print(f"| embedding net forward (32 segments) | {32 * hop / fwd:.0f} |")
    print(f"| `Catalog.add_folder` ({args.tp_files} files x 30 s: decode, embed, SQLite, FAISS) "
          f"| {rep.audio_seconds / add_cpu:.0f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--flat-queries", type=int, default=50, help="per-query timing of exact")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--kinds", default="ivfpq", help="comma list of ivfpq,hnsw")
    ap.add_argument("--nlist", type=int, default=None, help="IVF lists (default ≈ √n)")
    ap.add_argument("--nprobe", default="8,16,32")
    ap.add_argument("--ef", default="32,64,128")
    ap.add_argument("--refine", default="8,32", help="exact re-ranking factors (x k)")
    ap.add_argument("--tp-files", type=int, default=4)
    ap.add_argument("--skip-throughput", action="store_true")
    args = ap.parse_args()
    ann_table(args)
    if not args.skip_throughput:
        throughput_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
