"""The AEC recipe end to end on a tiny fake data root: prepare, train (tiny), evaluate."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "aec"


def _load(name: str):  # noqa: ANN202
    sys.path.insert(0, str(RECIPE))
    spec = importlib.util.spec_from_file_location(f"aec_recipe_{name}", RECIPE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _voice(rng: np.random.Generator, seconds: float, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f0 = rng.uniform(100, 220)
    env = np.clip(np.sin(2 * np.pi * rng.uniform(2, 4) * t), 0, None)
    return (0.1 * env * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6))
            ).astype(np.float32)


def _fake_root(root: Path) -> None:
    rng = np.random.default_rng(0)
    files = {"speech/speechbrain/ASR/spk1_snt1.flac": 1.0, "speech/speechbrain/ASR/spk2_snt1.flac":
             1.0, "speech/pyroomacoustics/cmu_arctic_us_axb_a0004.flac": 1.0,
             "speech/pyroomacoustics/arctic_a0010.flac": 1.0,
             "fsdd/0_george_0.flac": 0.5, "fsdd/1_theo_0.flac": 0.5}
    for rel, sec in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, _voice(rng, sec), 16000)
    for rel in ("speech/speechbrain/noise/noise1.flac", "speech/speechbrain/noise/noise4.flac"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, 0.05 * rng.standard_normal(16000).astype(np.float32), 16000)
    for rel in ("speech/speechbrain/RIRs/rir1.flac", "speech/speechbrain/RIRs/rir3.flac"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        h = rng.standard_normal(800).astype(np.float32) * np.exp(-np.arange(800) / 100.0)
        sf.write(root / rel, h.astype(np.float32) * 0.5, 16000)


def test_tiny_recipe(tmp_path: Path) -> None:
    pytest.importorskip("pyroomacoustics")
    root, data, run = tmp_path / "root", tmp_path / "data", tmp_path / "run"
    _fake_root(root)
    assert _load("prepare").main(["--data-root", str(root), "--out", str(data), "--rooms", "1",
                                  "--test-rooms", "1", "--test-per-scenario", "1",
                                  "--test-seconds", "1.0"]) == 0
    assert len((data / "test.jsonl").read_text().splitlines()) == 4
    assert _load("train").main(["--config", str(RECIPE / "configs" / "tiny.json"),
                                "--data", str(data), "--data-root", str(root),
                                "--out", str(run)]) == 0
    info = json.loads((run / "train_info.json").read_text())
    assert len(info["history"]) == 2 and (run / "best.safetensors").exists()
    out = tmp_path / "eval"
    assert _load("evaluate").main(["--model", str(run / "best.safetensors"), "--data",
                                   str(data), "--data-root", str(root), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert "network dual mask" in report["summary"]
    assert "erle" in report["summary"]["pbfdaf (ours)"]["far_single"]
    assert (out / "spectrograms.png").exists() and (out / "table.md").exists()
    diag = tmp_path / "diag"
    assert _load("diagnose").main(["--model", str(run / "best.safetensors"), "--data",
                                   str(data), "--data-root", str(root), "--out", str(diag),
                                   "--sweep", "1"]) == 0
    rows = json.loads((diag / "diagnose.json").read_text())["rows"]
    assert {r["scenario"] for r in rows} == {"double_talk", "near_single"}
    # the stored test mixtures are exact sums with the near-end time-aligned
    assert all(r["near_lag"] == 0 and r["mix_residual"] < 1e-3 for r in rows)
    assert "atten_echo_db" in rows[0] or "atten_echo_db" in rows[1]
    assert json.loads((diag / "sweep.json").read_text())


def test_extra_voices_and_distinct_talkers(tmp_path: Path) -> None:
    """prepare_voice.py writes per-licence manifests of near-end-only voices (MIR-1K: the
    right, singing-voice channel); train.py uses them with distinct near/far talkers."""
    pytest.importorskip("pyroomacoustics")
    root, data, run = tmp_path / "root", tmp_path / "data", tmp_path / "run"
    _fake_root(root)
    rng = np.random.default_rng(1)
    (root / "sms_tools").mkdir()
    sf.write(root / "sms_tools" / "speech-male.flac", _voice(rng, 0.5, 44100), 44100)
    (root / "mir1k" / "Wavfile").mkdir(parents=True)
    for name in ("amy_1_01", "amy_1_02", "bug_2_01"):
        music, voice = 0.3 * rng.standard_normal(8000), _voice(rng, 0.5)
        sf.write(root / "mir1k" / "Wavfile" / f"{name}.flac",
                 np.stack([music, voice], 1).astype(np.float32), 16000)
    assert _load("prepare").main(["--data-root", str(root), "--out", str(data), "--rooms", "1",
                                  "--test-rooms", "1", "--test-per-scenario", "1",
                                  "--test-seconds", "1.0"]) == 0
    assert _load("prepare_voice").main(["--data-root", str(root), "--out", str(data),
                                        "--mir1k", "1"]) == 0
    mir = [json.loads(line) for line in (data / "voice_mir1k.jsonl").read_text().splitlines()]
    assert [r["group"] for r in mir] == ["mir1k_amy", "mir1k_bug"]  # one clip per singer
    got, _ = sf.read(data / mir[0]["path"])
    want, _ = sf.read(root / "mir1k" / "Wavfile" / "amy_1_01.flac")
    np.testing.assert_allclose(got, want[:, 1], atol=1e-3)  # the voice channel, not the mix
    assert len((data / "voice_cc.jsonl").read_text().splitlines()) == 1
    cfg = json.loads((RECIPE / "configs" / "tiny.json").read_text())
    cfg["data"].update(distinct_talkers=True, extra_near=["voice_cc.jsonl", "voice_mir1k.jsonl"])
    cfg["task"] = {"sisdr_weight": 0.002}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert _load("train").main(["--config", str(tmp_path / "cfg.json"), "--data", str(data),
                                "--data-root", str(root), "--out", str(run)]) == 0
    info = json.loads((run / "train_info.json").read_text())
    assert "train_sisdr" in info["history"][-1]


def _fake_recordings(folder: Path) -> None:
    """A DTLN-style folder: far-end, near-end and double-talk ``*_mic.wav`` / ``*_lpb.wav``."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    n = 16000 * 4
    path = rng.standard_normal(600) * np.exp(-np.arange(600) / 80.0) * 0.3
    for kind in ("farend_singletalk", "nearend_singletalk", "doubletalk"):
        far = _voice(rng, 4.0) if kind != "nearend_singletalk" else np.zeros(n, np.float32)
        near = _voice(rng, 4.0) if kind != "farend_singletalk" else np.zeros(n, np.float32)
        if kind == "doubletalk":
            far[n // 2:] = 0.0  # the far end falls silent: "far-silent" frames to score
        mic = np.convolve(far, path)[:n] + near + 1e-3 * rng.standard_normal(n)
        sf.write(folder / f"clip_{kind}_mic.wav", mic.astype(np.float32), 16000)
        sf.write(folder / f"clip_{kind}_lpb.wav", far, 16000)


def test_tiny_hybrid_recipe_and_real_recordings(tmp_path: Path) -> None:
    """A hybrid model (linear stage -> network) trains, evaluates on the simulated set, and
    evaluate_real.py scores every system on (fake) recordings in one run."""
    pytest.importorskip("pyroomacoustics")
    root, data, run = tmp_path / "root", tmp_path / "data", tmp_path / "run"
    _fake_root(root)
    assert _load("prepare").main(["--data-root", str(root), "--out", str(data), "--rooms", "1",
                                  "--test-rooms", "1", "--test-per-scenario", "1",
                                  "--test-seconds", "1.0"]) == 0
    cfg = json.loads((RECIPE / "configs" / "tiny.json").read_text())
    cfg["model"]["hybrid"] = True
    cfg["data"]["linear_warmup"] = 0.5  # train on the end of 1 s examples
    (tmp_path / "hybrid.json").write_text(json.dumps(cfg))
    assert _load("train").main(["--config", str(tmp_path / "hybrid.json"), "--data", str(data),
                                "--data-root", str(root), "--out", str(run)]) == 0
    model = run / "best.safetensors"
    out = tmp_path / "eval"
    assert _load("evaluate").main(["--model", str(model), "--data", str(data),
                                   "--data-root", str(root), "--out", str(out)]) == 0
    summary = json.loads((out / "report.json").read_text())["summary"]
    assert np.isfinite(summary["network dual mask"]["far_single"]["erle"])
    assert "kalman linear (ours)" in summary
    rec = tmp_path / "dtln"
    _fake_recordings(rec)
    real = tmp_path / "real"
    assert _load("evaluate_real").main(["--dtln", str(rec), "--data-root", str(root),
                                        "--model", str(model), "--out", str(real)]) == 0
    report = json.loads((real / "report.json").read_text())
    assert set(report["clips"]) == {f"dtln/clip_{k}" for k in
                                    ("farend_singletalk", "nearend_singletalk", "doubletalk")}
    far = report["clips"]["dtln/clip_farend_singletalk"]["scores"]
    assert far["kalman linear (ours, aec.linear)"]["erle"] > 3.0  # the linear stage cancels
    assert far["mic (unprocessed)"]["erle"] == 0.0
    dt = report["clips"]["dtln/clip_doubletalk"]
    assert 0.3 < dt["far_active_fraction"] < 0.8
    assert "pesq_silent" not in dt["scores"]["mic (unprocessed)"]  # under 3 s far-silent
    assert "loss_silent" in dt["scores"][f"network {model}"]
    near = report["clips"]["dtln/clip_nearend_singletalk"]["scores"]
    assert near["mic (unprocessed)"]["loss"] == 0.0
    assert (real / "table.md").read_text().count("dtln/clip_") >= 3
    assert _load("evaluate_real").main(["--out", str(tmp_path / "none"), "--data-root",
                                        str(tmp_path / "nowhere")]) == 1


def _fake_talker_roots(tmp: Path) -> tuple[Path, Path, Path]:
    """speechocean762-like (train/ and test/ lists; the test speakers' audio is missing, so
    reading it would fail), Resemblyzer-like LibriSpeech and ESC-10-like class folders."""
    rng = np.random.default_rng(1)
    so, libri, esc = tmp / "so", tmp / "libri", tmp / "esc"
    for split, speakers in (("train", range(1, 7)), ("test", (50, 51))):
        (so / split).mkdir(parents=True)
        lines = []
        for s in speakers:
            for u in range(2):
                utt = f"{s:05d}{u:04d}"
                rel = f"WAVE/SPEAKER{s:04d}/{utt}.WAV"
                lines.append(f"{utt}\t{rel}")
                if split == "train":
                    (so / rel).parent.mkdir(parents=True, exist_ok=True)
                    sf.write(so / rel, _voice(rng, 0.6), 16000, format="WAV")
        (so / split / "wav.scp").write_text("\n".join(lines) + "\n")
    for sub, spk, n in (("librispeech_train-clean-100", 19, 1),
                        ("librispeech_test-other", 367, 2), ("librispeech_test-other", 533, 2)):
        for u in range(n):
            d = libri / sub / (str(spk) if "test" in sub else "")
            d.mkdir(parents=True, exist_ok=True)
            sf.write(d / f"{spk}-100-{u:04d}.flac", _voice(rng, 0.6), 16000)
    for cls in ("001 - Dog bark", "002 - Rain"):
        (esc / cls).mkdir(parents=True)
        for fold in (1, 5):
            sf.write(esc / cls / f"{fold}-1000-A.flac",
                     0.1 * rng.standard_normal(8000).astype(np.float32), 16000)
            (esc / cls / f"{fold}-1000-A.flac").rename(esc / cls / f"{fold}-1000-A.ogg")
    return so, libri, esc


def test_real_talkers_split_by_speaker_train_a_per_bin_hybrid_and_validate(
        tmp_path: Path) -> None:
    pytest.importorskip("pyroomacoustics")
    root, data = tmp_path / "root", tmp_path / "data"
    _fake_root(root)
    assert _load("prepare").main(["--data-root", str(root), "--out", str(data), "--rooms", "1",
                                  "--test-rooms", "1", "--test-per-scenario", "1",
                                  "--test-seconds", "1.0"]) == 0
    so, libri, esc = _fake_talker_roots(tmp_path)
    assert _load("prepare_talkers").main(["--speechocean", str(so), "--librispeech", str(libri),
                                          "--esc10", str(esc), "--out", str(data),
                                          "--valid-speakers", "2", "--valid-libri", "1"]) == 0
    info = json.loads((data / "talkers_real.json").read_text())
    train, valid = set(info["talkers"]["train"]), set(info["talkers"]["valid"])
    assert not train & valid and len(valid) == 3  # 2 speechocean + 1 LibriSpeech test-other
    assert {"so0050", "so0051"}.isdisjoint(train | valid)  # test/ speakers never read
    assert "libri19" in train
    with np.load(data / "noise_real.npz") as z:
        assert sorted({k.split("/")[0] for k in z.files}) == ["train", "valid"]
        assert all(k.startswith("valid/") == (k.split("/")[2] == "1") for k in z.files)
    cfg = json.loads((RECIPE / "configs" / "tiny.json").read_text())
    cfg["model"].update({"hybrid": True, "refine_channels": 2, "refine_dilations": [1]})
    cfg["data"].update({"linear_warmup": 0.5, "real_talkers": True, "valid_items": 3,
                        "sim": {"ser_db": [-15, 15], "echo_delay_ms": [10, 500]}})
    config = tmp_path / "real.json"
    config.write_text(json.dumps(cfg))
    run = tmp_path / "run"
    assert _load("train").main(["--config", str(config), "--data", str(data),
                                "--data-root", str(root), "--out", str(run)]) == 0
    e2e_cfg = json.loads((RECIPE / "configs" / "tiny.json").read_text())
    (tmp_path / "e2e.json").write_text(json.dumps(e2e_cfg))
    e2e = tmp_path / "e2e"
    assert _load("train").main(["--config", str(tmp_path / "e2e.json"), "--data", str(data),
                                "--data-root", str(root), "--out", str(e2e)]) == 0
    out = tmp_path / "valid"
    models = [run / "best.safetensors", e2e / "best.safetensors"]
    assert _load("validate").main(["--config", str(config), "--data", str(data), "--data-root",
                                   str(root), "--out", str(out), "--model", str(models[0]),
                                   "--model", str(models[1])]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["clips"] == 3 and set(report["models"]) == {str(m) for m in models}
    hybrid = report["models"][str(models[0])]
    trained = json.loads((run / "train_info.json").read_text())
    assert abs(hybrid["valid_loss"] - trained["best_valid_loss"]) < 1e-4  # the same clips


def test_real_pools_can_leave_out_the_recorded_noises(tmp_path: Path) -> None:
    """``data.recorded_noise: false`` trains on prepare_talkers.py's noise only (ESC-10,
    CC BY / CC0): prepare.py's recorded noises (Apache-2.0 / MIT) stay out; validation never
    has them. ``data.train_sim`` changes the training simulator only."""
    train_mod = _load("train")
    rng = np.random.default_rng(0)
    clip = (1000 * rng.standard_normal(800)).astype(np.int16)
    np.savez(tmp_path / "talkers_real.npz", **{f"{s}/{k}/0": clip for s, k in
                                                 (("train", "a"), ("train", "b"),
                                                  ("valid", "c"), ("valid", "d"))})
    esc = {"train/esc_0": clip + 1, "train/esc_1": clip + 2, "valid/esc_2": clip + 3}
    np.savez(tmp_path / "noise_real.npz", **esc)
    recorded = [np.full(800, 7.0, np.float32)]
    measured = {"noise": recorded, "rirs": [np.ones(10, np.float32)]}
    for keep in (True, False):
        train, valid = train_mod.load_real_pools(tmp_path, measured, recorded_noise=keep)
        assert len(train["talkers"]) == 2 and len(valid["talkers"]) == 2
        assert len(valid["noise"]) == 1 and np.array_equal(valid["noise"][0], esc["valid/esc_2"])
        has_recorded = any(n is recorded[0] for n in train["noise"])
        assert has_recorded == keep and len(train["noise"]) == 2 + keep
    from audiofcn.models.echo import EchoCancellerConfig

    cfg = {"data": {"duration": 1.0, "sim": {"ser_db": [-15.0, 15.0]},
                    "train_sim": {"scenario_probs": {"double_talk": 1.0}}}}
    valid_sim = train_mod.sim_config(cfg, EchoCancellerConfig())
    train_sim = train_mod.sim_config(cfg, EchoCancellerConfig(), train=True)
    assert valid_sim.ser_db == train_sim.ser_db == (-15.0, 15.0)
    assert train_sim.scenario_probs == {"double_talk": 1.0}
    assert valid_sim.scenario_probs["far_single"] > 0
