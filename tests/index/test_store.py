"""FAISS stores: approximate kinds agree with exact search; the file format detects damage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audiofcn.index.store import (
    IndexFileError,
    IndexParams,
    build_index,
    choose_kind,
    configure_search,
    read_index,
    set_faiss_threads,
    write_index,
)


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, d))
    x = centers[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_approximate_recall_against_exact(kind: str) -> None:
    set_faiss_threads(1)
    x = clustered(4000, 32)
    ids = np.arange(len(x), dtype=np.int64) * 5 + 3
    q = clustered(50, 32, seed=1)
    exact = build_index(x, ids, IndexParams("flat"))
    approx = build_index(x, ids, IndexParams(kind, nprobe=16))
    _, i_exact = exact.search(q, 10)
    _, i_approx = approx.search(q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i_exact, i_approx, strict=True)])
    assert recall >= 0.9
    assert set(np.unique(i_approx)) <= set(ids)


def test_file_round_trip_and_damage(tmp_path: Path) -> None:
    x = clustered(300, 16)
    ids = np.arange(300, dtype=np.int64)
    idx = build_index(x, ids, IndexParams("flat"))
    path = tmp_path / "index.afx"
    write_index(path, idx, {"generation": 7, "params": IndexParams("flat").to_dict()})
    header, back = read_index(path)
    assert header["generation"] == 7 and header["ntotal"] == 300 and back.ntotal == 300
    configure_search(back, IndexParams("flat"))
    np.testing.assert_array_equal(idx.search(x[:5], 3)[1], back.search(x[:5], 3)[1])
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(IndexFileError, match="checksum"):
        read_index(path)
    path.write_bytes(b"PK\x03\x04 some zip")
    with pytest.raises(IndexFileError, match="not an audiofcn index"):
        read_index(path)
    with pytest.raises(IndexFileError, match="not found"):
        read_index(tmp_path / "missing.afx")


def test_choose_kind() -> None:
    assert choose_kind(10, 100) == "flat"
    assert choose_kind(500, 100, "ivfpq") == "flat"  # too few to train PQ codebooks
    assert choose_kind(500, 100, "hnsw") == "hnsw"
    assert choose_kind(10**6, 100_000) == "ivfpq"
