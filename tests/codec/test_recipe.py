"""The codec recipe end to end on tiny rendered data: prepare, train (tiny config), evaluate."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "codec"


def _load(name: str):  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(f"codec_recipe_{name}", RECIPE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_tiny_recipe_prepares_trains_and_evaluates(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert _load("prepare").main(["--out", str(data), "--no-real", "--songs", "10",
                                  "--song-seconds", "1.5"]) == 0
    assert (data / "train.jsonl").exists() and (data / "test.jsonl").exists()
    assert _load("train").main(["--config", str(RECIPE / "configs" / "tiny.json"),
                                "--data", str(data), "--out", str(run)]) == 0
    info = json.loads((run / "train_info.json").read_text())
    hist = info["history"]
    assert len(hist) == 2
    # The adversarial phase ran (warm-up of 1 step in the tiny config) and usage is logged.
    assert "train_d_loss" in hist[-1] and "train_perplexity" in hist[-1]
    assert (run / "best.safetensors").exists()
    if shutil.which("opusenc") is None:
        pytest.skip("opus-tools not installed")
    out = tmp_path / "eval"
    assert _load("evaluate").main(["--model", str(run / "best.safetensors"), "--data", str(data),
                                   "--out", str(out), "--seconds", "1.0", "--max-clips", "1",
                                   "--ours-kbps", "0.4", "0.8", "--opus-kbps", "6",
                                   "--no-visqol"]) == 0
    report = json.loads((out / "report.json").read_text())
    systems = set(report["summary"]["all"])
    assert systems == {"ours 0.4 kbps", "ours 0.8 kbps", "opus 6 kbps"}
    assert abs(report["summary"]["all"]["ours 0.8 kbps"]["payload_kbps"] - 0.8) < 0.05


@pytest.mark.slow
def test_train_fine_tunes_the_lyra_port(tmp_path: Path) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert _load("prepare").main(["--out", str(data), "--no-real", "--songs", "10",
                                  "--song-seconds", "1.0"]) == 0
    cfg = json.loads((RECIPE / "configs" / "lyra_finetune.json").read_text())
    cfg["train"].update(epochs=1, max_steps_per_epoch=1, batch_size=1, time_budget_s=None)
    cfg["data"].update(segment_seconds=0.04, valid_items=1)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert _load("train").main(["--config", str(tmp_path / "cfg.json"), "--data", str(data),
                                "--out", str(run), "--init", "lyra"]) == 0
    from audiofcn.models import load_model

    tuned = load_model(run / "last.safetensors")
    assert tuned.model_name == "lyra_soundstream"
