"""FAISS vector stores and their on-disk file format.

Kinds (all inner product on L2-normalised vectors, i.e. cosine similarity, all wrapped in
``IndexIDMap2`` so that vectors carry the catalog's segment ids and can be reconstructed):

- ``"flat"``: exact ``IndexFlatIP``; supports removal. Used below ``approx_threshold``.
- ``"ivfpq"``: ``IndexIVFPQ`` (nlist ≈ √N, PQ with d/4 sub-quantisers of 8 bits) whose
  shortlist is re-ranked exactly (``IndexRefineFlat``), so recall stays close to exact search
  at a small fraction of the scan cost.
- ``"hnsw"``: ``IndexHNSWFlat`` (M=32); graph search, no training.

Approximate kinds cannot remove vectors (HNSW cannot, and ``IndexIDMap2`` over IVF cannot
renumber), so the catalog hides removed ids at search time and rebuilds when too many pile up.

File format (``index.afx``), written atomically (temp file + ``os.replace``)::

    b"AFCNIDX\\0" | u8 version | u32 header length | JSON header | FAISS bytes | u32 crc32

The header records the kind, dimension, vector count and the catalog *generation* the index was
built for; a reader that finds a different generation, a bad checksum or a truncated file
rebuilds from the SQLite catalog (the source of truth) instead of trusting it.
"""

from __future__ import annotations

import json
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audiofcn.io.audio import atomic_output

MAGIC = b"AFCNIDX\0"
VERSION = 1
KINDS = ("flat", "ivfpq", "hnsw")
MIN_IVFPQ = 4096


class IndexFileError(ValueError):
    """The index file is missing, truncated, corrupt or from another format version."""


def set_faiss_threads(n: int | None) -> None:
    """FAISS and torch share the OpenMP pool: always set FAISS threads explicitly."""
    import faiss

    faiss.omp_set_num_threads(max(1, int(n or os.cpu_count() or 1)))


@dataclass
class IndexParams:
    kind: str = "flat"
    nlist: int | None = None  # IVF lists; None: 4·√N rounded to a power of two
    pq_m: int | None = None  # PQ sub-quantisers; None: d/4
    nprobe: int = 16
    refine_factor: int = 32  # exact re-ranking of k·refine_factor PQ candidates
    hnsw_m: int = 32
    ef_construction: int = 64
    ef_search: int = 128

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def choose_kind(n: int, approx_threshold: int, approx_kind: str = "ivfpq") -> str:
    """Exact search below the threshold (it is fast there and supports removal). IVF-PQ also
    needs enough vectors to train its 256-centroid PQ codebooks and its coarse lists."""
    if n < approx_threshold or (approx_kind == "ivfpq" and n < MIN_IVFPQ):
        return "flat"
    return approx_kind


def build_index(vectors: np.ndarray, ids: np.ndarray, params: IndexParams) -> Any:
    """Build an ``IndexIDMap2`` of ``params.kind`` over ``vectors (n, d)`` with int64 ``ids``."""
    import faiss

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    n, d = vectors.shape if vectors.ndim == 2 else (0, 0)
    if params.kind not in KINDS:
        raise ValueError(f"unknown index kind {params.kind!r}; known: {KINDS}")
    if params.kind == "flat":
        base = faiss.IndexFlatIP(d)
    elif params.kind == "hnsw":
        base = faiss.IndexHNSWFlat(d, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = params.ef_construction
        base.hnsw.efSearch = params.ef_search
    else:
        # nlist ≈ √N (a power of two): k-means cost grows with nlist², and the exact re-ranking
        # of the shortlist keeps recall high with a coarser quantiser (benchmarks/index.py).
        nlist = params.nlist or max(1, 2 ** round(math.log2(max(1.0, math.sqrt(n)))))
        nlist = max(1, min(nlist, n // 39 if n >= 39 else 1))  # FAISS wants ~39 points/list
        m = params.pq_m or max(1, d // 4)
        while d % m:
            m -= 1
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        ivf.nprobe = min(params.nprobe, nlist)
        train = vectors
        n_train = max(64 * nlist, 16_384)  # enough for k-means and the 256-entry PQ books
        if n > n_train:
            rng = np.random.default_rng(0)
            train = vectors[np.sort(rng.choice(n, n_train, replace=False))]
        ivf.train(train)
        base = faiss.IndexRefineFlat(ivf)
        base.k_factor = params.refine_factor
    index = faiss.IndexIDMap2(base)
    if n:
        index.add_with_ids(vectors, ids)
    return index


def configure_search(index: Any, params: IndexParams) -> None:
    """Re-apply search-time knobs after loading (nprobe, efSearch, k_factor)."""
    import faiss

    base = faiss.downcast_index(index.index)
    if isinstance(base, faiss.IndexRefine):
        base.k_factor = params.refine_factor
        ivf = faiss.extract_index_ivf(base.base_index)
        ivf.nprobe = min(params.nprobe, ivf.nlist)
    elif isinstance(base, faiss.IndexHNSW):
        base.hnsw.efSearch = params.ef_search


def write_index(path: str | os.PathLike[str], index: Any, header: dict[str, Any]) -> None:
    """Write ``index`` with ``header`` atomically: a crash leaves the previous file intact."""
    import faiss

    payload = faiss.serialize_index(index).tobytes()
    head = json.dumps({**header, "ntotal": int(index.ntotal), "dim": int(index.d)}).encode()
    body = MAGIC + struct.pack("<BI", VERSION, len(head)) + head + payload
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(body)
            f.write(struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF))
            f.flush()
            os.fsync(f.fileno())


def read_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    return _read(path, header_only=True)[0]


def read_index(path: str | os.PathLike[str]) -> tuple[dict[str, Any], Any]:
    """Read and verify an index file; raises :class:`IndexFileError` naming the problem."""
    return _read(path, header_only=False)


def _read(path: str | os.PathLike[str], header_only: bool) -> tuple[dict[str, Any], Any]:
    import faiss

    p = Path(path)
    if not p.exists():
        raise IndexFileError(f"{p}: index file not found")
    data = p.read_bytes()
    fixed = len(MAGIC) + 5
    if len(data) < fixed + 4 or data[: len(MAGIC)] != MAGIC:
        raise IndexFileError(f"{p}: not an audiofcn index file")
    version, hlen = struct.unpack("<BI", data[len(MAGIC):fixed])
    if version != VERSION:
        raise IndexFileError(f"{p}: index format version {version}, expected {VERSION}")
    if len(data) < fixed + hlen + 4:
        raise IndexFileError(f"{p}: truncated index file")
    try:
        header = json.loads(data[fixed:fixed + hlen])
    except json.JSONDecodeError:
        raise IndexFileError(f"{p}: corrupt index header") from None
    if header_only:
        return header, None
    (crc,) = struct.unpack("<I", data[-4:])
    if zlib.crc32(data[:-4]) & 0xFFFFFFFF != crc:
        raise IndexFileError(f"{p}: checksum mismatch (truncated or corrupt index file)")
    payload = np.frombuffer(data[fixed + hlen:-4], dtype=np.uint8)
    index = faiss.deserialize_index(payload)
    return header, index
