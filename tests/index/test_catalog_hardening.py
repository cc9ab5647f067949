"""Catalog hardening: arguments are validated before anything is stored, a damaged SQLite file
is one line naming the file and the way back, two creators of one new catalog never collide,
and wrong --model / --db paths are one-line errors (library and CLI)."""

from __future__ import annotations

import fcntl
import math
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.cli.main import main
from audiofcn.index import Catalog, CatalogError
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet
from audiofcn.models.soundstream import SoundStream, SoundStreamConfig

SR = 16000


@pytest.fixture
def lib(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    cfg = EmbeddingConfig(segment_seconds=1.0, channels=(4, 8), pools=((2, 2), (2, 2)),
                          embedding_dim=16)
    model = EmbeddingNet(cfg).save_pretrained(tmp_path / "model.safetensors")
    music = tmp_path / "music"
    music.mkdir()
    t = np.arange(2 * SR) / SR
    for i in range(3):
        sf.write(music / f"s{i}.wav", 0.3 * np.sin(2 * np.pi * 200 * (i + 1) * t), SR)
    return Path(model), music


def run(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    return code, err


def _one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if not x.startswith("usage:") and
             not x.startswith(" ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("hop", ["-1", "0", "nan", "inf"])
def test_cli_bad_hop_is_refused_and_nothing_is_stored(lib, tmp_path: Path, capsys,
                                                      hop: str) -> None:
    model, music = lib
    db = tmp_path / "c"
    code, err = run(capsys, "index", "add", music, "--db", db, "--model", model, "--hop", hop)
    assert code == 2 and "--hop" in _one_line(err)
    assert not db.exists()
    code, err = run(capsys, "index", "add", music, "--db", db, "--model", model)
    assert code == 0, err  # and a later run works


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"hop_seconds": -1.0}, "hop"), ({"hop_seconds": 0.0}, "hop"),
    ({"hop_seconds": math.nan}, "hop"), ({"hop_seconds": math.inf}, "hop"),
    ({"approx_threshold": 0}, "approx_threshold"),
    ({"approx_kind": "bogus"}, "approx_kind")])
def test_create_validates_before_storing(lib, tmp_path: Path, kwargs: dict,
                                         message: str) -> None:
    model, _ = lib
    with pytest.raises(CatalogError, match=message):
        Catalog.create(tmp_path / "c", model, **kwargs)
    assert not (tmp_path / "c" / Catalog.DB).exists()
    Catalog.create(tmp_path / "c", model).close()  # the folder is still usable


def _catalog(lib, tmp_path: Path) -> Path:
    model, music = lib
    db = tmp_path / "cat"
    with Catalog.create(db, model) as cat:
        cat.add_folder(music)
    return db


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty_tables"])
def test_damaged_sqlite_is_one_line_with_recovery(lib, tmp_path: Path, capsys,
                                                  damage: str) -> None:
    db = _catalog(lib, tmp_path)
    f = db / Catalog.DB
    data = f.read_bytes()
    if damage == "garbage":
        f.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "truncated":
        f.write_bytes(data[: len(data) // 3])
    else:
        f.write_bytes(data[:100] + bytes(len(data) - 100))
    _, music = lib
    for argv in (["index", "info", "--db", db], ["index", "add", music, "--db", db],
                 ["index", "rebuild", "--db", db], ["index", "remove", "1", "--db", db],
                 ["search", music / "s0.wav", "--db", db]):
        code, err = run(capsys, *argv)
        line = _one_line(err)
        assert code == 1 and str(f) in line, line
        assert "cannot be rebuilt" in line and "index add" in line, line
    with pytest.raises(CatalogError, match="cannot be rebuilt"):
        Catalog.open(db)


def test_busy_while_another_process_creates(lib, tmp_path: Path, capsys) -> None:
    """The folder's lock is held (another `index add` is creating it): refused with the same
    'busy' message as for an existing catalog, and nothing written."""
    model, music = lib
    db = tmp_path / "c"
    db.mkdir()
    with open(db / Catalog.LOCK, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        code, err = run(capsys, "index", "add", music, "--db", db, "--model", model)
        assert code == 1 and "another process is changing this catalog" in _one_line(err)
        assert not (db / Catalog.DB).exists() and not (db / Catalog.MODEL).exists()
    assert run(capsys, "index", "add", music, "--db", db, "--model", model)[0] == 0


def test_two_creators_race(lib, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both pass the 'no catalog yet' check, then create at once: one wins, the other gets a
    clean CatalogError (busy or already there), and the catalog is whole."""
    import audiofcn.models as models

    model, _ = lib
    barrier = threading.Barrier(2, timeout=30)
    real = models.load_model

    waited = threading.local()

    def slow_load(path):  # both threads are past the existence check here
        m = real(path)
        if not getattr(waited, "done", False):  # create() loads it once more, via open()
            waited.done = True
            barrier.wait()
        return m

    monkeypatch.setattr(models, "load_model", slow_load)
    outcomes: list[object] = []

    def create() -> None:
        try:
            Catalog.create(tmp_path / "c", model).close()
            outcomes.append("ok")
        except Exception as err:  # noqa: BLE001 - the test records what each one raised
            outcomes.append(err)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert outcomes.count("ok") == 1, outcomes
    loser = next(o for o in outcomes if o != "ok")
    assert isinstance(loser, CatalogError), repr(loser)
    assert "another process" in str(loser) or "already exists" in str(loser)
    monkeypatch.undo()
    with Catalog.open(tmp_path / "c") as cat:
        assert cat.num_tracks() == 0 and cat.info()["hop_seconds"] == 0.5


def test_model_that_is_not_an_embedding_net(lib, tmp_path: Path, capsys) -> None:
    _, music = lib
    torch.manual_seed(0)
    codec = SoundStream(SoundStreamConfig(channels=2, embedding_dim=4, num_quantizers=2,
                                          codebook_size=16, strides=(2, 4)))
    codec.save_pretrained(tmp_path / "codec.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk" * 10)
    for bad, message in [(tmp_path / "codec.safetensors", "not an embedding model"),
                         (tmp_path / "junk.safetensors", "not a readable"),
                         (tmp_path / "missing.safetensors", "not found"),
                         (music, "not found|not a readable|folder")]:
        db = tmp_path / f"c_{bad.stem}"
        code, err = run(capsys, "index", "add", music, "--db", db, "--model", bad)
        line = _one_line(err)
        assert code == 1 and str(bad) in line, line
        assert any(m in line for m in message.split("|")), line
        assert not (db / Catalog.DB).exists()


def test_db_pointing_at_a_file(lib, tmp_path: Path, capsys) -> None:
    model, music = lib
    f = tmp_path / "afile"
    f.write_text("x")
    for argv in (["index", "add", music, "--db", f, "--model", model],
                 ["index", "info", "--db", f], ["search", music / "s0.wav", "--db", f]):
        code, err = run(capsys, *argv)
        line = _one_line(err)
        assert code == 1 and str(f) in line and "not a folder" in line, line
    assert f.read_text() == "x"
