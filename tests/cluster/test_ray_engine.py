"""``--engine ray`` gives the local engine's answers: same tags, same catalog (ids, segments,
embeddings, tags) and same search results, on a small rendered catalog, with a local 2-CPU Ray
cluster started inside the test. Also: an interrupted run recomputes only unfinished shards."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from audiofcn.cli.main import main  # noqa: E402
from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig  # noqa: E402
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet  # noqa: E402
from audiofcn.models.fcn import FCN, FCNConfig  # noqa: E402

pytestmark = pytest.mark.slow  # about 30 s: a local Ray instance and 3 small Ray Data jobs


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five rendered 3 s songs with a manifest of their tags."""
    from audiofcn.data.synth import SynthConfig, synth_catalog

    root = tmp_path_factory.mktemp("songs")
    synth_catalog(root, 5, seed=3, config=SynthConfig(duration=3.0), progress=False, workers=1)
    return root


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    tagger = FCN(FCNConfig(labels=("piano", "drums", "bass"),
                           frontend=LogMelConfig(mel=MelConfig(16000, STFTConfig(512, 256), 16)),
                           input_length=16000, channels=(4, 8), pools=((2, 2), (2, 4))))
    emb = EmbeddingNet(EmbeddingConfig(segment_seconds=1.0, channels=(4, 8),
                                       pools=((2, 2), (2, 2)), embedding_dim=16))
    return (tagger.save_pretrained(root / "tagger.safetensors"),
            emb.save_pretrained(root / "emb.safetensors"))


def test_tag_ray_matches_local_and_resumes(
        ray_cluster: None, catalog: Path, models: tuple[Path, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Same CSV as the local engine, from a run that resumes a killed one: the one intact shard
    is kept and the two damaged ones recomputed; a broken file is reported by both engines."""
    from audiofcn.cli.cluster import expand_inputs
    from audiofcn.cluster.tagging import tag_sharded
    from audiofcn.models import load_model

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    inputs, tagger = [str(catalog / "audio"), str(broken)], str(models[0])
    assert main(["tag", *inputs, "--model", tagger, "--out", str(tmp_path / "local.csv"),
                 "--no-progress"]) == 1  # 1: the broken file is listed, the rest tagged
    work = tmp_path / "ray.csv.shards"
    first = tag_sharded(load_model(models[0]).eval(), expand_inputs(inputs), work,
                        shard_size=2, workers=2)
    assert (first.shards, first.computed, first.resumed) == (3, 3, 0)
    assert len(first.failures) == 1 and "broken.wav" in first.failures[0]
    (work / "shard-00001.done").unlink()  # killed before shard 1's marker was written
    data = (work / "shard-00002.parquet").read_bytes()  # shard 2's file cut short
    (work / "shard-00002.parquet").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["tag", *inputs, "--model", tagger, "--out", str(tmp_path / "ray.csv"),
                 "--engine", "ray", "--shard-size", "2"]) == 1
    assert "3 shards, 2 computed, 1 resumed" in capsys.readouterr().out
    local = (tmp_path / "local.csv").read_text()
    assert (tmp_path / "ray.csv").read_text() == local and not work.exists()
    assert len(list(csv.reader(local.splitlines()))) == 6  # header + 5 songs


def test_manifest_inputs_and_parquet_output(catalog: Path, tmp_path: Path) -> None:
    from audiofcn.cli.cluster import expand_inputs
    from audiofcn.cluster.tagging import write_parquet
    from audiofcn.tagging import TrackTags

    files = expand_inputs([str(catalog / "manifest.jsonl")])
    assert sorted(files) == sorted((catalog / "audio").glob("*.wav"))
    res = [TrackTags("a.wav", 1.5, {"x": 0.25, "y": 0.75})]
    write_parquet(tmp_path / "t.parquet", res, ["x", "y"], top=1)
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "t.parquet").to_pylist() == [
        {"path": "a.wav", "duration_s": 1.5, "top_tags": "y:0.750", "x": 0.25, "y": 0.75}]


def _tables(db: Path) -> dict[str, list]:
    conn = sqlite3.connect(db / "catalog.sqlite")
    out = {"tracks": conn.execute("SELECT id, path, duration FROM tracks ORDER BY id")
           .fetchall(),
           "segments": conn.execute("SELECT id, track_id, start, end FROM segments ORDER BY id")
           .fetchall(),
           "tags": conn.execute("SELECT track_id, tag FROM tags ORDER BY 1, 2").fetchall(),
           "emb": [np.frombuffer(r[0], np.float32) for r in
                   conn.execute("SELECT embedding FROM segments ORDER BY id")]}
    conn.close()
    return out


def test_index_add_ray_matches_local(ray_cluster: None, catalog: Path,
                                     models: tuple[Path, Path], tmp_path: Path) -> None:
    from audiofcn.index import Catalog

    audio, model = catalog / "audio", str(models[1])
    common = ["--model", model, "--manifest", str(catalog / "manifest.jsonl")]
    assert main(["index", "add", str(audio), "--db", str(tmp_path / "local"), *common]) == 0
    assert main(["index", "add", str(audio), "--db", str(tmp_path / "ray"), *common,
                 "--engine", "ray", "--shard-size", "2"]) == 0
    a, b = _tables(tmp_path / "local"), _tables(tmp_path / "ray")
    assert len(a["tracks"]) == 5 and len(a["segments"]) > 10 and a["tags"]
    for key in ("tracks", "segments", "tags"):
        assert a[key] == b[key], key
    np.testing.assert_allclose(np.stack(a["emb"]), np.stack(b["emb"]), atol=1e-6)
    assert not (tmp_path / "ray" / ".shards").exists()
    songs = sorted(audio.glob("*.wav"))
    with Catalog.open(tmp_path / "local") as la, Catalog.open(tmp_path / "ray") as lb:
        for song in songs:
            ra = [r.to_dict() for r in la.search_file(song, k=5, start=0.5, end=2.5)]
            rb = [r.to_dict() for r in lb.search_file(song, k=5, start=0.5, end=2.5)]
            assert ra == rb and Path(ra[0]["path"]).name == song.name
    # a second ray run finds nothing new (same skip rule as the local engine)
    assert main(["index", "add", str(audio), "--db", str(tmp_path / "ray"),
                 "--engine", "ray"]) == 0
    assert _tables(tmp_path / "ray")["segments"] == a["segments"]


def test_ivf_shards_filled_by_ray_tasks_match_local(ray_cluster: None, tmp_path: Path) -> None:
    from audiofcn.index.ondisk import (
        IVFPQParams,
        build_ondisk,
        local_filler,
        open_ondisk,
        ray_filler,
    )

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(3000, dtype=np.int64) + 100
    params = IVFPQParams(nlist=8, m=4, nbits=6, nprobe=4, refine_factor=4).resolved(3000)
    for name, filler in (("local", local_filler), ("ray", ray_filler(2))):
        chunks = [(ids[i:i + 700], x[i:i + 700]) for i in range(0, 3000, 700)]
        build_ondisk(tmp_path / name, x, chunks, params, filler=filler)
    a, b = open_ondisk(tmp_path / "local"), open_ondisk(tmp_path / "ray")
    assert a.ntotal == b.ntotal == 3000
    sa, ia = a.search(x[:50], 5)
    sb, ib = b.search(x[:50], 5)
    assert (ia == ib).all() and np.allclose(sa, sb) and (ia[:, 0] == ids[:50]).mean() > 0.9
