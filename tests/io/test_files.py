"""Folder walks report what they could not look at (unreadable folders, dangling links)."""

import os
from pathlib import Path

import pytest
import torch

from audiofcn.cli.main import main
from audiofcn.io import save_audio
from audiofcn.io.files import find_audio_files


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    save_audio(root / "b.wav", torch.randn(8000) * 0.1, 8000)
    save_audio(root / "sub" / "a.flac", torch.randn(8000) * 0.1, 8000)
    save_audio(root / "locked" / "c.wav", torch.randn(8000) * 0.1, 8000)
    (root / ".b.wav.audiofcn-tmp-1-x.wav").write_bytes(b"half-written")  # hidden: left out
    (root / "gone.wav").symlink_to(root / "missing.wav")
    return root


@pytest.fixture
def locked_folder(monkeypatch: pytest.MonkeyPatch, library: Path) -> Path:
    # Tests run as root, where chmod cannot make a folder unreadable: refuse to list it instead.
    real_scandir = os.scandir
    locked = library / "locked"

    def scandir(path="."):  # noqa: ANN001, ANN202 - same signature as os.scandir
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return locked


def test_walk_reports_unreadable_folders_and_keeps_dangling_links(library, locked_folder):
    files, problems = find_audio_files([library])
    assert [f.relative_to(library).as_posix() for f in files] == ["b.wav", "gone.wav",
                                                                   "sub/a.flac"]
    assert problems == [f"{locked_folder}: cannot list folder (permission denied)"]


def test_tag_reports_unreadable_folder_and_dangling_link(library, locked_folder, tmp_path,
                                                         capsys):
    out = tmp_path / "tags.csv"
    code = main(["tag", str(library), "--model", "fcn_synth", "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "locked: cannot list folder (permission denied)" in err
    assert "gone.wav" in err and "dangling link" in err
    assert "2 file(s) could not be tagged" in err
    assert out.exists()  # the readable files were still tagged


def test_index_add_reports_unreadable_folder_and_dangling_link(library, locked_folder,
                                                               tmp_path, capsys):
    code = main(["index", "add", str(library), "--db", str(tmp_path / "cat")])
    err = capsys.readouterr().err
    assert code == 1
    assert "permission denied" in err and "dangling link" in err
