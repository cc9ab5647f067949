from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.cli.main import main
from audiofcn.models.speaker_rcnn import SpeakerRCNN, SpeakerRCNNConfig

SR = 16000


@pytest.fixture
def files(tmp_path, synth_voice, two_speaker_audio) -> dict[str, Path]:
    torch.manual_seed(0)
    model = SpeakerRCNN(SpeakerRCNNConfig(channels=(4, 8), pools=((2, 2), (2, 2)),
                                          gru_hidden=8, embedding_dim=8))
    out = {"model": model.save_pretrained(tmp_path / "spk.safetensors")}
    sf.write(tmp_path / "conv.wav", two_speaker_audio[0], SR)
    out["conv"] = tmp_path / "conv.wav"
    for name, (f0, tilt) in {"a": (110.0, 0.6), "b": (260.0, 2.0)}.items():
        sf.write(tmp_path / f"{name}.wav", synth_voice(f0, tilt, 4.0, 1), SR)
        out[name] = tmp_path / f"{name}.wav"
    (tmp_path / "bad.wav").write_text("not audio")
    out["bad"] = tmp_path / "bad.wav"
    return out


def test_diarize_writes_rttm_and_json(files, tmp_path) -> None:
    out = tmp_path / "out"
    rc = main(["diarize", str(files["conv"]), "-o", str(out), "--model", str(files["model"]),
               "--num-speakers", "2", "--no-progress"])
    assert rc == 0
    lines = (out / "conv.rttm").read_text().splitlines()
    assert lines and all(len(x.split()) == 10 and x.split()[:3] == ["SPEAKER", "conv", "1"]
                         for x in lines)
    doc = json.loads((out / "conv.json").read_text())
    assert doc["uri"] == "conv" and doc["num_speakers"] == 2
    assert len(doc["segments"]) == len(lines)


def test_diarize_error_paths(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    m = ["--model", str(files["model"]), "--no-progress"]
    assert main(["diarize", str(tmp_path / "missing.wav"), "-o", str(out), *m]) == 1
    assert "no such file" in capsys.readouterr().err
    assert main(["diarize", str(files["conv"]), "-o", str(out), "--num-speakers", "0", *m]) == 1
    assert main(["diarize", str(files["conv"]), "-o", str(out), "--min-speakers", "3",
                 "--max-speakers", "2", *m]) == 1
    assert main(["diarize", str(files["conv"]), "-o", str(out), "--model",
                 str(tmp_path / "nope.safetensors")]) == 1
    capsys.readouterr()
    # one bad file among good ones: reported in one line, the others still written
    assert main(["diarize", str(files["bad"]), str(files["a"]), "-o", str(out), *m]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("audiofcn: error:") and "bad.wav" in err[0]
    assert not (out / "bad.rttm").exists() and (out / "a.rttm").exists()


def test_speakers_enroll_identify(files, tmp_path, capsys) -> None:
    db = tmp_path / "db"
    assert main(["speakers", "enroll", "alice", str(files["a"]), "--db", str(db),
                 "--model", str(files["model"])]) == 0
    assert main(["speakers", "enroll", "bob", str(files["b"]), "--db", str(db)]) == 0
    capsys.readouterr()
    assert main(["speakers", "identify", str(files["a"]), "--db", str(db), "--json",
                 "--threshold", "0.9"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["scores"][0]["name"] == "alice" and res["match"] == "alice"
    assert {s["name"] for s in res["scores"]} == {"alice", "bob"}
    # re-enrolling the same file does not duplicate it
    assert main(["speakers", "enroll", "alice", str(files["a"]), "--db", str(db)]) == 0
    assert "2 speaker(s)" in capsys.readouterr().out


def test_speakers_error_paths(files, tmp_path, capsys) -> None:
    assert main(["speakers", "identify", str(files["a"]), "--db", str(tmp_path / "none")]) == 1
    assert "no speaker database" in capsys.readouterr().err
    assert main(["speakers", "enroll", "bad name!", str(files["a"]), "--db",
                 str(tmp_path / "db"), "--model", str(files["model"])]) == 1
    assert "bad speaker name" in capsys.readouterr().err
    assert main(["speakers", "enroll", "x", str(files["bad"]), "--db", str(tmp_path / "db"),
                 "--model", str(files["model"])]) == 1
    assert not (tmp_path / "db").exists()  # nothing half-made


def test_diarize_names_enrolled_speakers(files, tmp_path) -> None:
    db = tmp_path / "db"
    assert main(["speakers", "enroll", "alice", str(files["a"]), "--db", str(db),
                 "--model", str(files["model"])]) == 0
    out = tmp_path / "out"
    # the enrolled recording itself must come back named
    assert main(["diarize", str(files["a"]), "-o", str(out), "--model", str(files["model"]),
                 "--db", str(db), "--num-speakers", "1", "--no-progress"]) == 0
    labels = {x.split()[7] for x in (out / "a.rttm").read_text().splitlines()}
    assert labels == {"alice"}
    assert np.isfinite(json.loads((out / "a.json").read_text())["duration"])


def test_demo_step_finds_the_three_speakers(tmp_path) -> None:
    from audiofcn.cli.diarize import demo_step

    msg = demo_step(tmp_path, tmp_path / "catalog")
    if "skipped" in msg:
        pytest.skip(msg)
    assert "of 3 speakers" in msg and "found 3 speakers" in msg, msg
    assert (tmp_path / "diarization" / "conversation.rttm").exists()
