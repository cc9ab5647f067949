"""Catalog: add/search/remove/persist round trips, incremental adds, bad files, crash safety."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.index import Catalog, CatalogError
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet

SR = 16000


def tiny_model(path: Path) -> Path:
    torch.manual_seed(0)
    cfg = EmbeddingConfig(segment_seconds=1.0, channels=(4, 8), pools=((2, 2), (2, 2)),
                          embedding_dim=16)
    EmbeddingNet(cfg).save_pretrained(path)
    return path


def make_music(folder: Path, n: int = 6, seconds: float = 3.0) -> list[Path]:
    """Distinct test 'tracks': chords of different pitches with noise bursts."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SR)) / SR
    paths = []
    for i in range(n):
        f0 = 110.0 * 2 ** (i * 5 / 12)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
        x = x * (0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + i) * t)) + \
            0.02 * rng.standard_normal(t.size)
        p = folder / f"track{i}.wav"
        sf.write(p, (0.3 * x / np.abs(x).max()).astype(np.float32), SR)
        paths.append(p)
    return paths


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    model = tiny_model(tmp_path / "model.safetensors")
    files = make_music(tmp_path / "music")
    return model, tmp_path / "cat", files


def ranked(results: list) -> list[tuple[str, float]]:
    return [(Path(r.path).name, round(r.score, 5)) for r in results]


def test_add_search_remove_persist(setup: tuple[Path, Path, list[Path]]) -> None:
    model, root, files = setup
    with Catalog.create(root, model) as cat:
        rep = cat.add_folder(files[0].parent)
        assert len(rep.added) == 6 and not rep.failed and rep.segments == cat.num_segments()
        assert cat.info()["index_vectors"] == cat.num_segments() > 6
        res = cat.search_file(files[2], k=3, start=0.5, end=2.0)
        assert Path(res[0].path).name == "track2.wav" and res[0].score > 0.99
        assert res[0].segments[0].start <= 1.0 and len({r.track_id for r in res}) == len(res)
        before = ranked(cat.search_file(files[4], k=5))
    with Catalog.open(root, writable=True) as cat:  # reopening gives identical results
        assert not cat.rebuilt_on_open
        assert ranked(cat.search_file(files[4], k=5)) == before
        n_seg = cat.num_segments()
        removed = cat.remove_track(str(files[4]))
        assert removed > 0 and cat.num_segments() == n_seg - removed
        assert "track4.wav" not in [n for n, _ in ranked(cat.search_file(files[4], k=6))]
        with pytest.raises(CatalogError, match="no track"):
            cat.remove_track(str(files[4]))
    with Catalog.open(root, writable=True) as cat:
        assert cat.num_tracks() == 5 and cat.index.ntotal == cat.num_segments()
        rep = cat.add_folder(files[0].parent)  # incremental: only the removed track is new
        assert [Path(p).name for p in rep.added] == ["track4.wav"] and len(rep.skipped) == 5
        x, _ = sf.read(files[1], dtype="float32")
        sf.write(files[1], x[::-1].copy(), SR)
        os.utime(files[1], (1, 1))
        rep = cat.add_folder(files[0].parent)
        assert [Path(p).name for p in rep.updated] == ["track1.wav"]
        assert cat.num_tracks() == 6 and cat.index.ntotal == cat.num_segments()


def test_tags_and_bad_files(setup: tuple[Path, Path, list[Path]]) -> None:
    model, root, files = setup
    folder = files[0].parent
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00not audio")
    (folder / "manifest.jsonl").write_text(
        '{"path": "track0.wav", "duration": 3.0, "sample_rate": 16000, "tags": ["piano"]}\n')
    with Catalog.create(root, model) as cat:
        rep = cat.add_folder(folder)
        assert len(rep.added) == 6 and len(rep.failed) == 1
        assert "broken.wav" in rep.failed[0] and "\n" not in rep.failed[0]
        res = cat.search_file(files[0], k=1)
        assert res[0].tags == ["piano"]
    with pytest.raises(CatalogError, match="already exists"):
        Catalog.create(root, model)
    with pytest.raises(CatalogError, match="no catalog"):
        Catalog.open(root.parent / "nothing")
    with Catalog.open(root) as cat, pytest.raises(CatalogError, match="read-only"):
        cat.remove_track(1)


def test_interrupted_transaction_rolls_back(setup, monkeypatch) -> None:
    model, root, files = setup
    with Catalog.create(root, model) as cat:
        cat.add_folder(files[0].parent, batch_files=2)
        state = (cat.num_tracks(), cat.num_segments(), cat.generation)
        new = make_music(files[0].parent.parent / "more", n=2)
        for i, p in enumerate(new):
            p.rename(p.with_name(f"new{i}.wav"))
        real = Catalog._set_meta

        def failing(self, key, value):  # dies inside the transaction, after the inserts
            if key == "generation":
                raise RuntimeError("simulated crash")
            return real(self, key, value)

        monkeypatch.setattr(Catalog, "_set_meta", failing)
        with pytest.raises(RuntimeError):
            cat.add_folder(new[0].parent)
        monkeypatch.setattr(Catalog, "_set_meta", real)
        assert (cat.num_tracks(), cat.num_segments(), cat.generation) == state
    with Catalog.open(root) as cat:
        assert not cat.rebuilt_on_open and cat.index.ntotal == cat.num_segments()


def test_crash_between_tables_and_index(setup: tuple[Path, Path, list[Path]]) -> None:
    """A process killed after committing the tables but before writing the index file: the
    catalog reopens, notices the stale index and rebuilds it from the stored embeddings."""
    model, root, files = setup
    with Catalog.create(root, model) as cat:
        cat.add_folder(files[0].parent)
        expected = ranked(cat.search_file(files[3], k=4))
    more = make_music(root.parent / "more", n=2)
    for i, p in enumerate(more):
        p.rename(p.with_name(f"late{i}.wav"))
    script = (
        "import os, sys\n"
        "import audiofcn.index.catalog as c\n"
        "c.write_index = lambda *a, **k: os._exit(9)\n"  # hard kill mid-update
        f"cat = c.Catalog.open({str(root)!r}, writable=True)\n"
        f"cat.add_folder({str(more[0].parent)!r})\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with Catalog.open(root, writable=True) as cat:
        assert cat.rebuilt_on_open
        assert cat.num_tracks() == 8 and cat.index.ntotal == cat.num_segments()
        assert ranked(cat.search_file(files[3], k=4))[0] == expected[0]
    with Catalog.open(root) as cat:  # the rebuilt index was persisted
        assert not cat.rebuilt_on_open


def test_corrupt_index_file_and_leftover_temp(setup: tuple[Path, Path, list[Path]]) -> None:
    model, root, files = setup
    with Catalog.create(root, model) as cat:
        cat.add_folder(files[0].parent)
        expected = ranked(cat.search_file(files[1], k=3))
    (root / ".index.afx.tmpjunk.afx").write_bytes(b"half written")  # an interrupted write
    data = (root / "index.afx").read_bytes()
    (root / "index.afx").write_bytes(data[: len(data) // 2])  # truncated
    with Catalog.open(root) as cat:
        assert cat.rebuilt_on_open and ranked(cat.search_file(files[1], k=3)) == expected


def test_approximate_kind_hides_removed_and_compacts(setup) -> None:
    model, root, files = setup
    with Catalog.create(root, model, approx_threshold=1, approx_kind="hnsw") as cat:
        cat.add_folder(files[0].parent)
        assert cat.info()["index_kind"] == "hnsw"
        n = cat.index.ntotal
        cat.remove_track(str(files[0]))  # < 20 % stale: hidden, not yet compacted
        assert cat.index.ntotal == n and cat.info()["stale_vectors"] > 0
        names = [Path(r.path).name for r in cat.search_file(files[0], k=6)]
        assert "track0.wav" not in names and len(names) == 5
        cat.remove_track(str(files[1]))
        assert cat.info()["stale_vectors"] == 0 and cat.index.ntotal == cat.num_segments()
