"""The separation recipe's tiny config: train (AE pretraining + IBM stage) and evaluate."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.io import AudioRecord, write_manifest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "separation"
SR = 16000


def _import(name: str):
    sys.path.insert(0, str(RECIPE))
    try:
        spec = importlib.util.spec_from_file_location(f"sep_recipe_{name}", RECIPE / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(RECIPE))


def tiny_catalog(root: Path) -> Path:
    """Three 1-s 'songs' with a vocals stem, written like synth_catalog does."""
    rng = np.random.default_rng(0)
    t = np.arange(SR) / SR
    recs = []
    for i, split in enumerate(["train", "train", "test"]):
        voice = 0.3 * np.sin(2 * np.pi * (600 + 100 * i) * t) * (np.sin(2 * np.pi * 2 * t) > 0)
        acc = 0.2 * np.sin(2 * np.pi * 150 * t) + 0.02 * rng.standard_normal(SR)
        (root / "audio").mkdir(parents=True, exist_ok=True)
        (root / "stems" / f"s{i}").mkdir(parents=True, exist_ok=True)
        sf.write(root / f"audio/s{i}.wav", (voice + acc).astype(np.float32), SR, "FLOAT")
        sf.write(root / f"stems/s{i}/vocals.wav", voice.astype(np.float32), SR, "FLOAT")
        recs.append(AudioRecord(path=f"audio/s{i}.wav", duration=1.0, sample_rate=SR,
                                split=split, stems={"vocals": f"stems/s{i}/vocals.wav"},
                                group=f"s{i}"))
    return write_manifest(root / "manifest.jsonl", recs)


def test_tiny_config_trains_and_evaluates(tmp_path: Path) -> None:
    torch.manual_seed(0)
    common = _import("common")
    train = _import("train")
    evaluate = _import("evaluate")
    manifest = tiny_catalog(tmp_path / "data")
    cfg = common.load_config("tiny")
    final = train.train(cfg, tmp_path / "run", manifest, progress=False)
    assert final.exists()
    assert (tmp_path / "run" / "pretrain" / "train_info.json").exists()
    info = json.loads((tmp_path / "run" / "train" / "train_info.json").read_text())
    assert info["model"] == "separator_fcn" and len(info["history"]) == 1
    # (the IBM oracle row is tested in tests/eval; BSS-Eval calls are the slow part here)
    report = evaluate.evaluate(manifest, {"tiny": str(final)}, tmp_path / "eval", png=True,
                               oracle=False)
    assert set(report["global"]) == {"mixture", "tiny"}
    g = report["global"]
    assert g["mixture"]["GNSDR"] == 0.0 and np.isfinite(g["tiny"]["GNSDR"])
    assert (tmp_path / "eval" / "report.json").exists()
    assert (tmp_path / "eval" / "mask.png").exists()
    assert "| tiny |" in evaluate.markdown(report)


def _row(nsdr: float, duration: float) -> dict:
    return {"voice_nsdr": nsdr, "duration": duration}


def test_compare_counts_wins_and_weights_by_duration() -> None:
    compare = _import("compare")
    report = {"clips": {
        "a": {"amy_1": _row(4.0, 1.0), "amy_2": _row(0.0, 3.0), "bob_1": _row(2.0, 2.0)},
        "b": {"amy_1": _row(1.0, 1.0), "amy_2": _row(1.0, 3.0), "bob_1": _row(1.0, 2.0)}}}
    out = compare.compare(report, "a", "b")
    assert out["clips"] == 3 and out["wins"] == 2
    assert out["per_singer"]["amy"] == {"a": 1.0, "b": 1.0}
    assert out["gnsdr_difference"] == pytest.approx((4 + 0 + 4 - 6) / 6)
    with pytest.raises(SystemExit, match="not in the report"):
        compare.compare(report, "a", "c")


def test_per_singer_table_weights_by_duration() -> None:
    compare = _import("compare")
    report = {"clips": {"a": {"amy_1": _row(4.0, 1.0), "amy_2": _row(0.0, 3.0),
                              "bob_1": _row(2.0, 2.0)}}}
    table = compare.per_singer_table(report).splitlines()
    assert table[0] == "| system | amy | bob | all |"
    assert table[2] == "| a | 1.00 | 2.00 | 1.33 |"
