"""On-disk IVF-PQ: trained on a sample, filled in shards, merged; recall against exact search,
ids kept; a catalog's read-only opens use it only while it matches the catalog's generation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.cli.main import main
from audiofcn.index import Catalog
from audiofcn.index.ondisk import IVFPQParams, build_ondisk, open_ondisk, read_ondisk_header
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 fixed centres, spread in a 6-d subspace (like embeddings, of low
    intrinsic dimension); the centres and subspace are the same for every seed."""
    g = np.random.default_rng(0)
    centres, basis = g.standard_normal((50, d)), g.standard_normal((6, d))
    rng = np.random.default_rng(seed)
    x = (centres[rng.integers(0, 50, n)] + 0.4 * rng.standard_normal((n, 6)) @ basis
         + 0.05 * rng.standard_normal((n, d)))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_sharded_build_recall_and_ids(tmp_path: Path) -> None:
    base, queries = clustered(6000, 32, 1), clustered(200, 32, 2)
    ids = np.arange(6000, dtype=np.int64) * 3 + 7  # ids survive the shard merge
    params = IVFPQParams(nlist=32, m=8, nbits=6, nprobe=8).resolved(len(base))
    chunks = [(ids[i:i + 2000], base[i:i + 2000]) for i in range(0, len(base), 2000)]
    times = build_ondisk(tmp_path / "ivf", base[::2], chunks, params, {"generation": 5})
    assert set(times) == {"train_s", "fill_s", "merge_s"}
    head = read_ondisk_header(tmp_path / "ivf")
    assert head["ntotal"] == 6000 and head["generation"] == 5
    assert head["factory"] == "IVF32,PQ8x6np"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ivf"]  # no temp folders left
    index = open_ondisk(tmp_path / "ivf")
    exact = ids[np.argsort(-(queries @ base.T), axis=1)[:, :10]]

    def recall(got: np.ndarray) -> float:
        return float(np.mean([len(set(g) & set(e)) / 10 for g, e in
                              zip(got, exact, strict=True)]))

    assert index.k_factor == 32  # the default: re-rank 32·k PQ candidates with fp16 vectors
    index.k_factor = 0
    _, got = index.search(queries, 10)
    assert 0.45 < recall(got) < 0.9  # 6-byte PQ codes alone: coarse (chance is 10/6000) ...
    assert set(got.ravel()) <= set(ids)
    index.k_factor = 32
    _, got = index.search(queries, 10)
    assert recall(got) > 0.97  # ... re-ranked: close to exact
    _, self_hit = index.search(base[:100], 1)
    assert np.mean(self_hit[:, 0] == ids[:100]) > 0.5
    # the HNSW coarse quantiser (for very large nlist) builds and finds the same neighbours
    hp = IVFPQParams(nlist=32, m=8, nbits=6, nprobe=8, hnsw_quantizer=True).resolved(6000)
    assert hp.factory(32) == "IVF32_HNSW32,PQ8x6np"
    build_ondisk(tmp_path / "hnsw", base[::2], chunks, hp)
    _, got_h = open_ondisk(tmp_path / "hnsw").search(queries, 10)
    assert recall(got_h) > 0.97


def test_catalog_build_ivf_and_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    torch.manual_seed(0)
    model = EmbeddingNet(EmbeddingConfig(segment_seconds=1.0, channels=(4, 8),
                                         pools=((2, 2), (2, 2)), embedding_dim=16)
                         ).save_pretrained(tmp_path / "m.safetensors")
    music = tmp_path / "music"
    music.mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(16 * 16000) / 16000
    for i in range(22):  # 22 tracks × 16 s at a 0.5 s hop: 682 segments
        x = np.sin(2 * np.pi * 110 * 2 ** (i / 7) * t) * (1 + np.sin(2 * np.pi * (i % 5) * t))
        sf.write(music / f"t{i:02d}.wav", (0.2 * x + 0.01 * rng.standard_normal(t.size))
                 .astype(np.float32), 16000)
    db = tmp_path / "cat"
    assert main(["index", "add", str(music), "--db", str(db), "--model", str(model)]) == 0
    assert main(["index", "build-ivf", "--db", str(db), "--m", "3"]) == 1  # 3 ∤ 16
    assert main(["index", "build-ivf", "--db", str(db), "--nlist", "64", "--m", "4"]) == 1
    assert "too few" in capsys.readouterr().err
    songs = sorted(music.glob("*.wav"))

    def tops() -> tuple[str, list[str]]:
        with Catalog.open(db) as cat:
            return cat.info()["index_kind"], [
                Path(cat.search_file(f, k=3, start=4.0, end=8.0)[0].path).name for f in songs]

    kind, exact = tops()
    hits = [t == f.name for t, f in zip(exact, songs, strict=True)]
    assert kind == "flat" and np.mean(hits) > 0.9
    ivf = ["index", "build-ivf", "--db", str(db), "--nlist", "4", "--m", "8", "--nbits", "4",
           "--vectors-per-shard", "200", "--nprobe", "4"]
    assert main([*ivf, "--refine-factor", "0"]) == 0
    kind, pq_only = tops()
    agree = np.mean([a == e for a, e in zip(pq_only, exact, strict=True)])
    # 4-byte codes (16 centroids per 2 dims) of an untrained 16-d toy net whose vectors all
    # lie close together: 0.41 of the top tracks agree with exact search (chance: 1/22) ...
    assert kind == "ivfpq_ondisk" and agree > 0.25, agree
    assert main(ivf) == 0  # ... and all of them once the shortlist is re-ranked (fp16)
    kind, refined = tops()
    assert kind == "ivfpq_ondisk" and refined == exact
    with Catalog.open(db) as cat:
        assert cat.index.ntotal == cat.num_segments() == 682
    with Catalog.open(db, writable=True) as cat:  # writers keep the in-memory index
        assert cat.info()["index_kind"] == "flat"
        cat.remove_track(str((music / "t00.wav").resolve()))
    with Catalog.open(db) as cat:  # the catalog moved on: the on-disk index is not used
        assert cat.info()["index_kind"] == "flat"
