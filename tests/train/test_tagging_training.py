import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from audiofcn.io import AudioRecord, save_audio
from audiofcn.models.rawwave import RawWaveCNN, RawWaveCNNConfig
from audiofcn.train import TrainConfig, Trainer
from audiofcn.train.classification import ClipDataset, TaggingTask, crop_or_pad, multi_hot

_spec = importlib.util.spec_from_file_location(
    "tagger_fixtures", Path(__file__).parents[1] / "models" / "tagger_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def _fit(model, task, train, valid, tmp_path, epochs=4, **kw):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), epochs=epochs, batch_size=8, lr=3e-3,
                      progress=False, device="cpu", **kw)
    trainer = Trainer(model, task, train, valid, cfg)
    before = trainer.validate()["loss"]
    trainer.fit()
    return trainer, before, trainer.validate()["loss"]


# One model per family (the plain SampleCNN/M-series blocks are covered by the others).
@pytest.mark.parametrize("name", ["fcn", "samplecnn_se", "rawwave_res", "attention"])
def test_few_steps_lower_the_loss_multilabel(name, tmp_path):
    torch.manual_seed(0)
    model = fx.tiny_models()[name]
    n = model.config.input_length
    train = TensorDataset(*fx.toy_batch(48, n, seed=1))
    valid = TensorDataset(*fx.toy_batch(16, n, seed=2))
    _, before, after = _fit(model, TaggingTask(multi_label=True), train, valid, tmp_path,
                            epochs=8)
    assert after < 0.8 * before, (before, after)


def test_single_label_cross_entropy_learns(tmp_path):
    torch.manual_seed(0)
    model = RawWaveCNN(RawWaveCNNConfig(labels=fx.LABELS, multi_label=False, input_length=4000,
                                        first_channels=8, stages=((8, 1), (16, 1))))
    x, y = fx.toy_batch(96, 4000, seed=3)
    keep = y.sum(1) == 1  # exactly one tone: class = which one
    train = TensorDataset(x[keep][:32], y[keep][:32].argmax(1))
    valid = TensorDataset(x[keep][32:], y[keep][32:].argmax(1))
    trainer, before, after = _fit(model, TaggingTask(multi_label=False), train, valid,
                                  tmp_path, epochs=8)
    assert after < 0.8 * before
    assert trainer.validate()["accuracy"] > 0.8


def test_trainer_writes_checkpoints_and_resumes(tmp_path):
    model = fx.tiny_models()["rawwave"]
    train = TensorDataset(*fx.toy_batch(16, 4000, seed=1))
    valid = TensorDataset(*fx.toy_batch(8, 4000, seed=2))
    _fit(model, TaggingTask(), train, valid, tmp_path, epochs=2)
    run = tmp_path / "run"
    for f in ("best.safetensors", "last.safetensors", "last.pt", "train_info.json"):
        assert (run / f).exists(), f
    info = json.loads((run / "train_info.json").read_text())
    assert info["model"] == "rawwave_cnn" and len(info["history"]) == 2
    assert "git_commit" in info and info["model_config"]["labels"] == ["low", "high"]
    # resume: a new trainer with more epochs continues from epoch 2
    cfg = TrainConfig(out_dir=str(run), epochs=3, batch_size=8, progress=False, device="cpu")
    t2 = Trainer(fx.tiny_models()["rawwave"], TaggingTask(), train, valid, cfg)
    assert t2.epoch == 2
    t2.fit()
    assert len(t2.history) == 3


def test_clip_dataset_crops_and_targets(tmp_path):
    for i, n in enumerate((3000, 12000)):
        save_audio(tmp_path / f"c{i}.wav", torch.randn(n) * 0.1, 8000)
    recs = [AudioRecord(f"c{i}.wav", n / 8000, 8000, tags=["high"] if i else ["low", "other"],
                        label="high" if i else "low") for i, n in enumerate((3000, 12000))]
    ds = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, multi_label=True,
                     gain_jitter_db=3.0)
    x0, y0 = ds[0]
    assert x0.shape == (4000,) and x0[3000:].abs().sum() == 0  # short clip padded
    assert y0.tolist() == [1.0, 0.0]
    assert ds[1][0].shape == (4000,)
    single = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, multi_label=False,
                         random_crop=False)
    assert single[1][1].item() == 1
    # centre crop is deterministic
    assert torch.equal(single[1][0], single[1][0])
    assert torch.equal(crop_or_pad(torch.arange(10.0), 4), torch.arange(3.0, 7.0))
    assert multi_hot(["b", "zzz"], ["a", "b"]).tolist() == [0.0, 1.0]
    lazy = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, preload=False)
    assert lazy[0][0].shape == (4000,) and lazy[1][0].shape == (4000,)
    assert torch.equal(lazy[1][1], ds[1][1])
    lazy_centre = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, random_crop=False,
                              preload=False)
    assert torch.allclose(lazy_centre[1][0], single[1][0], atol=1e-4)  # same centre crop
    bad = [AudioRecord("c0.wav", 1.0, 8000, label="nope")]
    with pytest.raises(ValueError, match="not one of the labels"):
        ClipDataset(bad, tmp_path, fx.LABELS, 8000, 4000, multi_label=False)


def test_time_budget_stops_early_and_anneals_the_learning_rate(tmp_path):
    model = fx.tiny_models()["rawwave"]
    train = TensorDataset(*fx.toy_batch(16, 4000, seed=1))
    valid = TensorDataset(*fx.toy_batch(8, 4000, seed=2))
    # A budget already spent after the first epoch: one epoch of 50 runs, and the cosine
    # schedule has reached its end (learning rate 0) because time, not steps, ran out.
    trainer, _, _ = _fit(model, TaggingTask(), train, valid, tmp_path, epochs=50,
                         time_budget_s=1e-6)
    assert trainer.epoch == 1 and len(trainer.history) == 1
    assert trainer.scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert state["trained_seconds"] > 0
    # Resuming a spent budget trains no further epoch.
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), epochs=50, batch_size=8, progress=False,
                      device="cpu", time_budget_s=1e-6)
    again = Trainer(fx.tiny_models()["rawwave"], TaggingTask(), train, valid, cfg)
    again.fit()
    assert again.epoch == 1


def test_clip_dataset_time_shift_and_speed_perturbation(tmp_path):
    save_audio(tmp_path / "s.wav", torch.full((1000,), 0.5), 8000)
    recs = [AudioRecord("s.wav", 1000 / 8000, 8000, label="low")]
    torch.manual_seed(0)
    shifted = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, multi_label=False,
                          time_shift=True)
    starts = set()
    for _ in range(20):
        x, _ = shifted[0]
        nz = torch.nonzero(x.abs() > 0.25)[:, 0]
        assert x.shape == (4000,) and len(nz) == 1000  # the whole clip, moved
        starts.add(int(nz[0]))
    assert len(starts) > 5 and max(starts) <= 3000
    speed = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, multi_label=False,
                        speed_perturb=0.2)
    lengths = {int((speed[0][0].abs() > 0.25).sum()) for _ in range(20)}
    assert len(lengths) > 3 and all(830 <= n <= 1250 for n in lengths)  # 1000 / (1 ± 0.2)
    # evaluation crops are never augmented
    plain = ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, multi_label=False,
                        random_crop=False, time_shift=True, speed_perturb=0.2)
    assert torch.equal(plain[0][0][:1000], torch.full((1000,), 0.5)) and \
        plain[0][0][1000:].abs().sum() == 0
    with pytest.raises(ValueError, match="speed_perturb"):
        ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, speed_perturb=1.5)
    with pytest.raises(ValueError, match="preload"):
        ClipDataset(recs, tmp_path, fx.LABELS, 8000, 4000, time_shift=True, preload=False)
