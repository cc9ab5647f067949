"""``audiofcn index add/info/remove/rebuild`` and ``audiofcn search`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.cli.main import main
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet

SR = 16000


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    torch.manual_seed(0)
    cfg = EmbeddingConfig(segment_seconds=1.0, channels=(4, 8), pools=((2, 2), (2, 2)),
                          embedding_dim=16)
    model = EmbeddingNet(cfg).save_pretrained(tmp_path / "model.safetensors")
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(3 * SR) / SR
    files = []
    for i in range(4):
        x = np.sin(2 * np.pi * 150 * 2 ** (i * 7 / 12) * t) * (0.6 + 0.4 * np.sin(i * t))
        files.append(music / f"song{i}.wav")
        sf.write(files[-1], (0.3 * x).astype(np.float32), SR)
    (music / "bad.wav").write_bytes(b"not audio at all")
    return model, music, files


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_index_and_search_round_trip(setup, tmp_path: Path, capsys) -> None:
    model, music, files = setup
    db = tmp_path / "catalog"
    code, out, err = run(capsys, "index", "add", music, "--db", db, "--model", model)
    # a folder run with a failed file exits 1 and lists it, as every command does
    assert code == 1 and "added 4" in out and "failed 1" in out
    assert "bad.wav" in err and err.count("\n") == 2
    code, out, _ = run(capsys, "index", "add", music, "--db", db)
    assert code == 1 and "added 0" in out and "unchanged 4" in out
    code, out, _ = run(capsys, "index", "info", "--db", db, "--json", "--tracks")
    info = json.loads(out)
    assert info["tracks"] == 4 and info["index_kind"] == "flat" and len(info["track_list"]) == 4

    code, out, _ = run(capsys, "search", files[1], "--db", db, "-k", "3", "--start", "0.5",
                       "--end", "2.5", "--json")
    res = json.loads(out)
    assert code == 0 and res["query"]["start"] == 0.5 and len(res["results"]) == 3
    top = res["results"][0]
    assert Path(top["path"]).name == "song1.wav" and top["score"] > 0.99
    assert len({r["track_id"] for r in res["results"]}) == 3  # grouped: one entry per track
    assert all(s["start"] < s["end"] for r in res["results"] for s in r["segments"])
    code, out, _ = run(capsys, "search", files[1], "--db", db, "-k", "2")
    assert code == 0 and out.splitlines()[1].strip().startswith("1.") and "song1.wav" in out
    assert " s  " in out  # segment start-end lines

    code, out, _ = run(capsys, "index", "remove", files[1], "--db", db)
    assert code == 0 and "3 tracks left" in out
    code, out, _ = run(capsys, "index", "rebuild", "--db", db)
    assert code == 0 and "flat index" in out
    code, out, _ = run(capsys, "search", files[1], "--db", db, "--json")
    assert "song1.wav" not in [Path(r["path"]).name for r in json.loads(out)["results"]]


def test_errors_are_one_line(setup, tmp_path: Path, capsys) -> None:
    model, music, files = setup
    db = tmp_path / "catalog"
    code, _, err = run(capsys, "search", files[0], "--db", tmp_path / "none")
    assert code == 1 and "no catalog here" in err and err.count("\n") == 1
    assert run(capsys, "index", "add", music, "--db", db, "--model", model)[0] == 1  # bad.wav
    code, _, err = run(capsys, "search", tmp_path / "missing.wav", "--db", db)
    assert code == 1 and "file not found" in err
    code, _, err = run(capsys, "search", files[0], "--db", db, "--start", "2", "--end", "1")
    assert code == 1 and "must be after" in err
    code, _, err = run(capsys, "search", music / "bad.wav", "--db", db)
    assert code == 1 and "bad.wav" in err and "Traceback" not in err
    code, _, err = run(capsys, "index", "remove", "12345", "--db", db)
    assert code == 1 and "no track" in err
    code, _, err = run(capsys, "index", "add", tmp_path / "nodir", "--db", db)
    assert code == 1 and "not a folder" in err
    code, _, err = run(capsys, "index", "add", music, "--db", tmp_path / "c2", "--model",
                       tmp_path / "nomodel.safetensors")
    assert code == 1 and "not found" in err
