import csv
import json
from pathlib import Path

import pytest
import torch

from audiofcn.cli.main import main
from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig
from audiofcn.io import save_audio
from audiofcn.io.files import find_audio_files
from audiofcn.models.fcn import FCN, FCNConfig
from audiofcn.tagging import chunk_audio

LABELS = ("piano", "drums", "bass")


@pytest.fixture
def tagger(tmp_path) -> Path:
    cfg = FCNConfig(labels=LABELS, frontend=LogMelConfig(mel=MelConfig(8000,
                                                                       STFTConfig(256, 128),
                                                                       16)),
                    input_length=4000, channels=(4, 8), pools=((2, 2), (2, 4)))
    return FCN(cfg).save_pretrained(tmp_path / "tiny_tagger.safetensors")


@pytest.fixture
def music(tmp_path) -> Path:
    root = tmp_path / "music"
    save_audio(root / "a.wav", torch.randn(8000 * 3) * 0.1, 8000)
    save_audio(root / "sub" / "b.flac", torch.randn(2, 16000 * 2) * 0.1, 16000)  # resampled
    save_audio(root / "sub" / "deeper" / "c.wav", torch.randn(1000) * 0.1, 8000)  # < 1 chunk
    (root / "sub" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (root / "notes.txt").write_text("not audio")  # ignored: not an audio extension
    return root


def test_chunking_and_file_discovery(music):
    assert chunk_audio(torch.ones(10), 4).shape == (3, 4)
    assert chunk_audio(torch.ones(3), 4).shape == (1, 4)
    assert chunk_audio(torch.ones(10), 4, hop=2).shape == (4, 4)
    found = [f.name for f in find_audio_files([music])[0]]
    assert found == ["a.wav", "b.flac", "broken.wav", "c.wav"]


def test_tag_folder_csv_keeps_going_over_failures(tagger, music, tmp_path, capsys):
    out = tmp_path / "tags.csv"
    code = main(["tag", str(music), "--model", str(tagger), "--out", str(out), "--top", "2",
                 "--no-progress"])
    assert code == 1  # one file failed, the others were still tagged
    err = capsys.readouterr().err
    assert "broken.wav" in err and "1 file(s) could not be tagged" in err
    rows = list(csv.DictReader(out.open()))
    assert [Path(r["path"]).name for r in rows] == ["a.wav", "b.flac", "c.wav"]
    assert set(rows[0]) == {"path", "duration_s", "top_tags", *LABELS}
    assert len(rows[0]["top_tags"].split(";")) == 2
    assert float(rows[0]["duration_s"]) == pytest.approx(3.0)
    for r in rows:
        assert all(0.0 <= float(r[lab]) <= 1.0 for lab in LABELS)
    assert not list(tmp_path.glob(".tags.csv*"))  # no temp files left behind


def test_tag_json_and_stdout(tagger, music, tmp_path, capsys):
    out = tmp_path / "tags.json"
    assert main(["tag", str(music / "a.wav"), "--model", str(tagger), "--out", str(out),
                 "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert data["failures"] == [] and len(data["tracks"]) == 1
    assert len(data["tracks"][0]["top"]) == 3 and set(data["tracks"][0]["scores"]) == set(LABELS)
    assert main(["tag", str(music / "a.wav"), "--model", str(tagger), "--no-progress"]) == 0
    assert "a.wav:" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--out", "tags.txt"], "must end in .csv or .json"),
    (["--model", "no_such_model"], "unknown tagger"),
])
def test_tag_errors_are_one_line(tagger, music, capsys, argv, message):
    if "--model" not in argv:
        argv = [*argv, "--model", str(tagger)]
    assert main(["tag", str(music / "a.wav"), *argv, "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_tag_missing_input_and_bad_checkpoint(tmp_path, capsys):
    assert main(["tag", str(tmp_path / "nope.wav")]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    save_audio(tmp_path / "x.wav", torch.zeros(800), 8000)
    assert main(["tag", str(tmp_path / "x.wav"), "--model", str(bad)]) == 1
    assert "bad.safetensors" in capsys.readouterr().err


def test_models_lists_architectures_with_parameter_counts(capsys):
    assert main(["models", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {(r["model"], r["variant"]): r for r in data["architectures"]}
    assert rows[("rawwave_cnn", "m18")]["paper"] == "3.7M"
    assert 3.6e6 < rows[("rawwave_cnn", "m18")]["parameters"] < 3.8e6
    assert {"fcn4", "fcn5", "fcn6", "fcn7"} <= {v for m, v in rows if m == "fcn"}
    assert main(["models"]) == 0
    assert "| samplecnn |" in capsys.readouterr().out


def test_shipped_default_tagger_loads_and_tags(tmp_path):
    from audiofcn.cli.tag import DEFAULT_TAGGER, SYNTH_TAGGER, load_tagger, shipped_taggers
    from audiofcn.tagging import DEFAULT_TAGGER as LIBRARY_DEFAULT

    assert DEFAULT_TAGGER == LIBRARY_DEFAULT == "msd50_crnn"
    path = shipped_taggers()[DEFAULT_TAGGER]
    assert path.stat().st_size < 5 * 2**20  # "a few MB" at most
    model = load_tagger(DEFAULT_TAGGER)
    assert {"rock", "jazz", "female vocalists", "instrumental"} <= set(model.config.labels)
    assert model.config.multi_label and not model.training
    save_audio(tmp_path / "x.wav", torch.randn(16000 * 4) * 0.1, 16000)
    assert main(["tag", str(tmp_path / "x.wav"), "--out", str(tmp_path / "t.json"),
                 "--no-progress"]) == 0
    track = json.loads((tmp_path / "t.json").read_text())["tracks"][0]
    assert set(track["scores"]) == set(model.config.labels)
    assert main(["tag", str(tmp_path / "x.wav"), "--model", SYNTH_TAGGER, "--out",
                 str(tmp_path / "s.json"), "--no-progress"]) == 0
    track = json.loads((tmp_path / "s.json").read_text())["tracks"][0]
    assert {"drums", "bass", "piano", "vocals"} <= set(track["scores"])


def test_models_lists_vocabulary_training_data_and_licence(capsys):
    assert main(["models", "--json"]) == 0
    shipped = {s["name"]: s for s in json.loads(capsys.readouterr().out)["shipped"]}
    assert shipped["msd50_crnn"]["default"] and "MIT" in shipped["msd50_crnn"]["licence"]
    assert "Million Song Dataset" in shipped["msd50_crnn"]["training_data"]
    assert len(shipped["msd50_crnn"]["labels"]) == 50
    assert "General-MIDI" in shipped["fcn_synth"]["training_data"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "msd50_crnn (default)" in out and "vocabulary: rock, pop" in out


def test_silent_and_one_sample_files_are_reported_not_tagged(tagger, tmp_path, capsys):
    root = tmp_path / "odd"
    save_audio(root / "silence.wav", torch.zeros(8000 * 2), 8000)
    save_audio(root / "one.wav", torch.full((1,), 0.5), 8000)
    save_audio(root / "ok.wav", torch.randn(8000) * 0.1, 8000)
    out = tmp_path / "tags.csv"
    code = main(["tag", str(root), "--model", str(tagger), "--out", str(out), "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "silence.wav" in err and "silent" in err
    assert "one.wav" in err and "too short" in err
    assert [Path(r["path"]).name for r in csv.DictReader(out.open())] == ["ok.wav"]
