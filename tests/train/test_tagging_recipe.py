"""The tagging recipe end to end on tiny data: prepare (FSDD, instruments), train, evaluate."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiofcn.io import AudioRecord, read_manifest, save_audio, write_manifest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "tagging"


def load_recipe(name: str):
    """Import recipes/tagging/<name>.py without leaking its ``common`` into other tests."""
    saved = sys.modules.pop("common", None)
    sys.path.insert(0, str(RECIPE))
    try:
        spec = importlib.util.spec_from_file_location(f"tagging_recipe_{name}",
                                                      RECIPE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(RECIPE))
        sys.modules.pop("common", None)
        if saved is not None:
            sys.modules["common"] = saved
    return mod


def _tone(freq: float, sr: int, n: int, rng) -> np.ndarray:
    t = np.arange(n) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t + rng.random() * 6) +
            0.01 * rng.standard_normal(n)).astype(np.float32)


def test_tiny_train_and_evaluate_multilabel(tmp_path):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(16):
        split = "train" if i < 10 else "valid" if i < 12 else "test"
        tags = [["low"], ["high"], ["low", "high"]][i % 3]
        x = sum(_tone(200 if t == "low" else 2000, 8000, 6000, rng) for t in tags)
        save_audio(tmp_path / "data" / f"c{i}.wav", x, 8000)
        recs.append(AudioRecord(f"c{i}.wav", 0.75, 8000, split=split, tags=tags))
    manifest = write_manifest(tmp_path / "data" / "manifest.jsonl", recs)
    out = tmp_path / "run"
    assert load_recipe("train").main(["--config", "tiny", "--manifest", str(manifest),
                                      "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "train_info.json").read_text())
    assert info["model"] == "fcn" and info["model_config"]["labels"] == ["high", "low"]
    assert load_recipe("evaluate").main(["--checkpoint", str(out / "best.safetensors"),
                                         "--manifest", str(manifest), "--out", str(out)]) == 0
    report = json.loads((out / "report_test.json").read_text())
    assert report["n_tracks"] == 4 and report["split"] == "test"
    assert (out / "report_test.png").exists()


def _fake_fsdd(root: Path) -> None:
    rng = np.random.default_rng(1)
    for speaker, f0 in (("george", 120), ("jackson", 180), ("theo", 240), ("nicolas", 300)):
        for digit in range(2):
            for index in range(12):
                save_audio(root / "fsdd" / f"{digit}_{speaker}_{index}.flac",
                           _tone(f0 * (1 + digit), 8000, 3000, rng), 8000)


def test_fsdd_speaker_split_holds_out_recordings_and_trains(tmp_path):
    _fake_fsdd(tmp_path / "data")
    prepare = load_recipe("prepare")
    out = tmp_path / "spk"
    prepare.main(["fsdd", "--task", "speaker", "--data-root", str(tmp_path / "data"),
                  "--out", str(out)])
    recs = read_manifest(out / "manifest.jsonl")
    by_split = {s: {r.path for r in recs if r.split == s} for s in ("train", "valid", "test")}
    assert not (by_split["test"] & (by_split["train"] | by_split["valid"]))
    test_recs = [r for r in recs if r.split == "test"]
    assert {r.label for r in test_recs} == {"george", "jackson", "theo", "nicolas"}
    assert all(Path(r.path).stem.split("_")[2] in ("0", "10") for r in test_recs)
    run = tmp_path / "run"
    load_recipe("train").main(["--config", "tiny_mseries", "--manifest",
                               str(out / "manifest.jsonl"), "--out", str(run), "--no-progress"])
    load_recipe("evaluate").main(["--checkpoint", str(run / "best.safetensors"), "--manifest",
                                  str(out / "manifest.jsonl"), "--out", str(run)])
    rep = json.loads((run / "report_test.json").read_text())
    assert "accuracy" in rep and len(rep["confusion"]) == 4
    # digit task: a whole speaker is held out
    prepare.main(["fsdd", "--task", "digit", "--data-root", str(tmp_path / "data"),
                  "--out", str(tmp_path / "dig")])
    recs = read_manifest(tmp_path / "dig" / "manifest.jsonl")
    assert {Path(r.path).stem.split("_")[1] for r in recs if r.split == "test"} == {"theo"}
    assert "theo" not in {Path(r.path).stem.split("_")[1] for r in recs if r.split != "test"}


def test_instrument_clips_split_by_source_file(tmp_path):
    rng = np.random.default_rng(2)
    phil = tmp_path / "data" / "philharmonia"
    for inst, f0 in (("flute", 880), ("cello", 130), ("guitar", 330)):
        for k in range(12):
            save_audio(phil / f"{inst}_A{k}_1_forte_normal.wav",
                       _tone(f0 * (1 + k / 12), 8000, 4000, rng), 8000)
    save_audio(phil / "snare-drum__1_forte_struck.wav", rng.standard_normal(800) * 0.3, 8000)
    out = tmp_path / "clips"
    load_recipe("prepare").main(["instruments", "--data-root", str(tmp_path / "data"),
                                 "--out", str(out), "--sample-rate", "8000", "--duration", "1",
                                 "--n-train", "12", "--n-valid", "3", "--n-test", "6"])
    recs = read_manifest(out / "manifest.jsonl")
    assert len(recs) == 21
    src = {s: {f for r in recs if r.split == s for f in r.meta["sources"]}
           for s in ("train", "valid", "test")}
    assert not (src["test"] & src["train"]) and not (src["valid"] & src["train"])
    assert all(1 <= len(r.tags) <= 3 for r in recs)
    assert {t for r in recs for t in r.tags} <= {"flute", "cello", "guitar", "percussion"}


@pytest.mark.parametrize("name", ["tiny", "tiny_mseries"])
def test_tiny_configs_build(name):
    common = load_recipe("common")
    cfg = common.load_config(name)
    model = common.build_model(cfg["model"], ["a", "b"], cfg["multi_label"])
    assert model(torch.randn(2, model.config.input_length)).shape == (2, 2)
