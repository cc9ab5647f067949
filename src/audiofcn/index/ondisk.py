"""IVF-PQ at catalog scale: trained once on a sample, filled in shards, merged on disk.

For 10^8–10^9 segments neither the exact vectors nor one in-memory index fit a machine. This
module builds the index the FAISS way for that size:

1. **train** an (optionally OPQ-rotated) ``IVF{nlist},PQ{m}x{nbits}`` index on a sample
   (inner product on unit vectors = cosine);
2. **fill** shards: each worker adds its slice of (id, vector) to a copy of the trained, empty
   index and writes it (``shard-00000.faiss`` ...); shards can be filled on a Ray cluster;
3. **merge** the shards' inverted lists into one ``OnDiskInvertedLists`` file
   (``faiss.contrib.ondisk.merge_ondisk``): searching memory-maps it, so RAM holds only the
   coarse quantiser and the PQ codebooks and the OS pages in the lists a query probes.

A finished index is a folder, written under a temporary name and renamed into place::

    header.json     {"version", "generation", "params", "ntotal", "dim", "factory"}
    index.faiss     the trained index whose inverted lists point at lists.ivfdata
    lists.ivfdata   the merged inverted lists (codes + ids), memory-mapped at search time
    refine.ids      int64 ids, ascending, and
    refine.f16      their vectors as float16 (d·2 bytes each), memory-mapped: the exact
                    re-ranking of the PQ shortlist (``refine_factor`` > 0)

Search keeps FAISS's API (``index.search(queries, k) -> (scores, ids)``). PQ codes alone cap
recall@10 well below 1 on dense clusters (benchmarks/index_scale.py), so by default the
``k·refine_factor`` best PQ candidates are re-scored with their float16 vectors, read from the
memory-mapped file: on disk that costs d·2 bytes a vector (256 B at d=128), and only the
shortlist's rows are read per query. A catalog opened read-only uses ``<catalog>/ivf`` when it
was built for the catalog's current generation (``audiofcn index build-ivf``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ONDISK_VERSION = 1


@dataclass
class IVFPQParams:
    """``nlist`` coarse lists, ``m`` PQ sub-quantisers of ``nbits`` bits (m·nbits/8 bytes a
    vector, plus 8 bytes of id), optional OPQ rotation, ``nprobe`` lists scanned per query."""

    nlist: int | None = None  # None: 2^round(log2(√N)), as the in-memory catalog index
    m: int = 32
    nbits: int = 8
    opq: bool = False
    nprobe: int = 32
    train_size: int | None = None  # None: max(64·nlist, 256·2^nbits) sample vectors
    refine_factor: int = 32  # re-rank k·refine_factor PQ candidates exactly; 0: PQ scores only
    hnsw_quantizer: bool = False  # coarse quantiser as an HNSW graph (for nlist ≥ 65536)

    def resolved(self, n: int) -> IVFPQParams:
        nlist = self.nlist or max(1, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))
        train = self.train_size or max(64 * nlist, 256 * 2 ** self.nbits)
        return IVFPQParams(nlist, self.m, self.nbits, self.opq, self.nprobe, min(train, n),
                           self.refine_factor, self.hnsw_quantizer)

    def factory(self, d: int) -> str:
        if d % self.m:
            raise ValueError(f"PQ sub-quantisers m={self.m} must divide the dimension {d}")
        pre = f"OPQ{self.m}," if self.opq else ""
        # "np": no polysemous training (a slow code-reordering step that only helps Hamming
        # pre-filtering, which the catalog does not use).
        coarse = "_HNSW32" if self.hnsw_quantizer else ""
        return f"{pre}IVF{self.nlist}{coarse},PQ{self.m}x{self.nbits}np"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def train_ivfpq(sample: np.ndarray, params: IVFPQParams) -> Any:
    """An empty, trained index for ``sample (n, d)`` unit vectors (``params`` resolved)."""
    import faiss

    sample = np.ascontiguousarray(sample, dtype=np.float32)
    index = faiss.index_factory(sample.shape[1], params.factory(sample.shape[1]),
                                faiss.METRIC_INNER_PRODUCT)
    index.train(sample)
    return index


def fill_shard(trained: bytes, ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """Add ``vectors (n, d)`` with int64 ``ids`` to a copy of the serialized trained index;
    returns the filled shard, serialized (what a Ray task sends back)."""
    import faiss

    index = faiss.deserialize_index(np.frombuffer(trained, dtype=np.uint8))
    index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32),
                       np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.serialize_index(index).tobytes()


Chunks = Iterable[tuple[np.ndarray, np.ndarray]]  # (ids (n,), vectors (n, d)) per shard
Filler = Callable[[bytes, Iterator[tuple[np.ndarray, np.ndarray]]], Iterator[bytes]]


def local_filler(trained: bytes, chunks: Iterator[tuple[np.ndarray, np.ndarray]]
                 ) -> Iterator[bytes]:
    for ids, vecs in chunks:
        yield fill_shard(trained, ids, vecs)


def build_ondisk(out_dir: str | os.PathLike[str], sample: np.ndarray, chunks: Chunks,
                 params: IVFPQParams, header: dict[str, Any] | None = None,
                 filler: Filler = local_filler) -> dict[str, float]:
    """Train on ``sample``, fill one shard per item of ``chunks`` (through ``filler``; see
    :func:`ray_filler`), merge them into ``out_dir`` (replacing it atomically). Returns the
    seconds spent in each stage."""
    import time

    import faiss
    from faiss.contrib.ondisk import merge_ondisk

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    times: dict[str, float] = {}
    try:
        t = time.perf_counter()
        trained = train_ivfpq(sample, params)
        times["train_s"] = time.perf_counter() - t
        blob = faiss.serialize_index(trained).tobytes()
        t = time.perf_counter()
        shard_files = []
        chunks = _keep_for_refine(chunks, tmp) if params.refine_factor else chunks
        for i, shard in enumerate(filler(blob, iter(chunks))):
            f = tmp / f"shard-{i:05d}.faiss"
            f.write_bytes(shard)
            shard_files.append(str(f))
        times["fill_s"] = time.perf_counter() - t
        t = time.perf_counter()
        merge_ondisk(trained, shard_files, str(tmp / "lists.ivfdata"))
        faiss.write_index(trained, str(tmp / "index.faiss"))
        for f in shard_files:
            os.unlink(f)
        times["merge_s"] = time.perf_counter() - t
        head = {**(header or {}), "version": ONDISK_VERSION, "params": params.to_dict(),
                "ntotal": int(trained.ntotal), "dim": int(trained.d),
                "factory": params.factory(int(trained.d))}
        (tmp / "header.json").write_text(json.dumps(head))
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return times


def _keep_for_refine(chunks: Chunks, folder: Path) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pass the chunks on, appending their ids and float16 vectors to the re-ranking files."""
    last = -1
    with open(folder / "refine.ids", "wb") as fi, open(folder / "refine.f16", "wb") as fv:
        for ids, vecs in chunks:
            ids = np.ascontiguousarray(ids, dtype=np.int64)
            if len(ids) and (ids[0] <= last or np.any(np.diff(ids) <= 0)):
                raise ValueError("re-ranking needs ids in ascending order across the chunks")
            last = int(ids[-1]) if len(ids) else last
            fi.write(ids.tobytes())
            fv.write(np.ascontiguousarray(vecs, dtype=np.float16).tobytes())
            yield ids, vecs


class RefinedIndex:
    """An on-disk IVF-PQ index whose shortlist is re-ranked with memory-mapped float16 vectors.
    ``search(q (n, d), k) -> (scores (n, k), ids (n, k))`` like a FAISS index; ``k_factor``
    = 0 returns the PQ results as they are."""

    def __init__(self, index: Any, folder: Path, k_factor: int) -> None:
        self.index = index
        self.ntotal = int(index.ntotal)
        self.d = int(index.d)
        self.k_factor = k_factor
        self.ids = np.memmap(folder / "refine.ids", dtype=np.int64, mode="r")
        self.vecs = np.memmap(folder / "refine.f16", dtype=np.float16, mode="r",
                              shape=(len(self.ids), self.d))

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(q, dtype=np.float32).reshape(-1, self.d)
        if not self.k_factor:
            return self.index.search(q, k)
        _, cand = self.index.search(q, min(self.ntotal, k * self.k_factor))
        scores = np.full((len(q), k), -np.inf, np.float32)
        ids = np.full((len(q), k), -1, np.int64)
        for r, row in enumerate(cand):
            row = np.unique(row[row >= 0])  # sorted: the memmap rows are read in file order
            if not len(row):
                continue
            pos = np.searchsorted(self.ids, row)
            s = self.vecs[pos].astype(np.float32) @ q[r]
            top = np.argsort(-s, kind="stable")[:k]
            scores[r, :len(top)], ids[r, :len(top)] = s[top], row[top]
        return scores, ids


def set_nprobe(index: Any, nprobe: int) -> None:
    import faiss

    ivf = faiss.extract_index_ivf(index.index if isinstance(index, RefinedIndex) else index)
    ivf.nprobe = min(nprobe, ivf.nlist)


def read_ondisk_header(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        head = json.loads((Path(path) / "header.json").read_text())
    except (OSError, ValueError):
        return None
    return head if head.get("version") == ONDISK_VERSION else None


def open_ondisk(path: str | os.PathLike[str], nprobe: int | None = None) -> Any:
    """Open a merged index folder for search; its inverted lists stay on disk (mmap)."""
    import faiss

    p = Path(path)
    head = read_ondisk_header(p)
    if head is None:
        raise FileNotFoundError(f"{p}: no on-disk IVF-PQ index here")
    index = faiss.read_index(str(p / "index.faiss"), faiss.IO_FLAG_ONDISK_SAME_DIR)
    set_nprobe(index, nprobe or head["params"]["nprobe"])
    k_factor = head["params"].get("refine_factor", 0)
    return RefinedIndex(index, p, k_factor) if k_factor else index


def ray_filler(workers: int | None = None) -> Filler:
    """A filler that adds each shard in a Ray task (one CPU each), at most ``2·workers`` shards
    in flight; the driver receives the filled shards in order."""

    def fill(trained: bytes, chunks: Iterator[tuple[np.ndarray, np.ndarray]]
             ) -> Iterator[bytes]:
        import ray

        task = ray.remote(num_cpus=1)(fill_shard)
        ref = ray.put(trained)
        limit = 2 * (workers or int(ray.cluster_resources().get("CPU", 1)))
        inflight: list[Any] = []
        for ids, vecs in chunks:
            inflight.append(task.remote(ref, ids, vecs))
            if len(inflight) >= limit:
                yield ray.get(inflight.pop(0))
        for r in inflight:
            yield ray.get(r)

    return fill


# --- the catalog's on-disk index ---------------------------------------------------------------
ONDISK_DIR = "ivf"


def build_catalog_ivf(cat: Any, params: IVFPQParams, shard_size: int = 1_000_000,
                      filler: Filler = local_filler) -> dict[str, Any]:
    """Build ``<catalog>/ivf`` from the catalog's stored embeddings, ``shard_size`` vectors a
    shard, for the catalog's current generation. Holds the catalog's write lock meanwhile."""
    from audiofcn.index.records import CatalogError

    with cat._write_lock():  # no writer may change the tables while they are read
        n = cat.num_segments()
        p = params.resolved(n)
        need = max(39 * p.nlist, 2 ** p.nbits * 39)
        if n < need:
            raise CatalogError(f"{cat.root}: {n} segments are too few for IVF{p.nlist},"
                               f"PQ{p.m}x{p.nbits} (needs at least {need}); the in-memory "
                               "index serves catalogs of this size")
        step = max(1, n // p.train_size)
        rows = cat.conn.execute("SELECT embedding FROM segments WHERE id % ? = 0 ORDER BY id "
                                "LIMIT ?", (step, p.train_size)).fetchall()
        sample = np.frombuffer(b"".join(r[0] for r in rows), np.float32).reshape(-1, cat.dim)

        def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            last = -1
            while True:
                rows = cat.conn.execute("SELECT id, embedding FROM segments WHERE id > ? "
                                        "ORDER BY id LIMIT ?", (last, shard_size)).fetchall()
                if not rows:
                    return
                last = rows[-1][0]
                yield (np.fromiter((r[0] for r in rows), np.int64, len(rows)),
                       np.frombuffer(b"".join(r[1] for r in rows), np.float32)
                       .reshape(len(rows), cat.dim))

        times = build_ondisk(cat.root / ONDISK_DIR, sample, chunks(), p,
                             {"generation": cat.generation}, filler)
    return {"segments": n, "params": p.to_dict(), **times}


def attach_ondisk(cat: Any) -> bool:
    """Serve ``cat``'s searches from ``<catalog>/ivf`` when it was built for the catalog's
    current generation (else keep the in-memory index and say why in the log)."""
    from audiofcn.index.store import IndexParams

    head = read_ondisk_header(cat.root / ONDISK_DIR)
    if head is None:
        return False
    if head.get("generation") != cat.generation or head.get("dim") != cat.dim:
        log.warning("%s: on-disk IVF-PQ index is for generation %s, catalog is at %s; using "
                    "the in-memory index (run `audiofcn index build-ivf`)",
                    cat.root / ONDISK_DIR, head.get("generation"), cat.generation)
        return False
    p = head["params"]
    cat.index = open_ondisk(cat.root / ONDISK_DIR)
    cat.params = IndexParams(kind="ivfpq_ondisk", nlist=p["nlist"], pq_m=p["m"],
                             nprobe=p["nprobe"])
    return True
