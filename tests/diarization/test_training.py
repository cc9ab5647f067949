from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiofcn.diarization.training import (
    SpeakerAMSoftmaxTask,
    SpeakerAugment,
    SpeakerCrops,
    SpeakerTripletTask,
    augment,
    collate_speakers,
    read_manifest,
    speaker_weights,
)
from audiofcn.models.speaker_rcnn import SpeakerRCNN, SpeakerRCNNConfig

ROOT = Path(__file__).resolve().parents[2]
VOICES = [(100.0, 0.5), (150.0, 1.0), (230.0, 1.5), (320.0, 2.2)]


def make_data(tmp: Path, synth_voice) -> Path:
    (tmp / "root").mkdir()
    rows = []
    for i, (f0, tilt) in enumerate(VOICES):
        for j in range(2):
            rel = f"spk{i}_{j}.wav"
            x = synth_voice(f0 * (1 + 0.02 * j), tilt, 1.5, 10 * i + j)
            sf.write(tmp / "root" / rel, x, 16000)
            rows.append({"path": rel, "speaker": f"s{i}", "frames": len(x),
                         "sample_rate": 16000, "start": 0, "end": len(x),
                         "split": "valid" if j == 1 and i < 2 else "train"})
    (tmp / "speakers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp


def small(num_classes: int = 0) -> SpeakerRCNN:
    torch.manual_seed(0)
    return SpeakerRCNN(SpeakerRCNNConfig(channels=(4, 8), pools=((2, 2), (2, 2)),
                                         gru_hidden=16, embedding_dim=8,
                                         num_classes=num_classes))


def test_dataset_batches(tmp_path, synth_voice) -> None:
    data = make_data(tmp_path, synth_voice)
    spk = read_manifest(data / "speakers.jsonl", "train")
    assert sorted(spk) == ["s0", "s1", "s2", "s3"]
    ds = SpeakerCrops(data / "root", spk, 0.5, 3, repeats=2, augment=SpeakerAugment())
    assert len(ds) == 8
    batch = collate_speakers([ds[0], ds[1]])
    assert batch["audio"].shape == (6, 8000)
    assert batch["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    x = augment(np.ones(8000, np.float32) * 0.1, 16000, SpeakerAugment(), np.random.default_rng(0))
    assert x.shape == (8000,) and np.isfinite(x).all()


def _fit(task, model: SpeakerRCNN, batch: dict[str, torch.Tensor], steps: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss, _ = task.training_step(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def test_losses_go_down_on_tiny_data(tmp_path, synth_voice) -> None:
    data = make_data(tmp_path, synth_voice)
    spk = read_manifest(data / "speakers.jsonl", "train")
    ds = SpeakerCrops(data / "root", spk, 0.5, 2, deterministic=True)
    batch = collate_speakers([ds[i] for i in range(4)])
    trip = _fit(SpeakerTripletTask(margin=0.5), small().train(), batch, 25)
    assert np.mean(trip[-5:]) < 0.5 * np.mean(trip[:3])
    ams = _fit(SpeakerAMSoftmaxTask(scale=10.0), small(num_classes=4).train(), batch, 25)
    assert np.mean(ams[-5:]) < 0.5 * np.mean(ams[:3])


def _train_recipe():  # noqa: ANN202 - the loaded recipes/diarization/train.py module
    spec = importlib.util.spec_from_file_location("diar_train",
                                                  ROOT / "recipes/diarization/train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_tiny_recipe_trains_and_exports(tmp_path, synth_voice) -> None:
    (tmp_path / "data").mkdir()
    data = make_data(tmp_path / "data", synth_voice)
    mod = _train_recipe()
    out = tmp_path / "run"
    export = tmp_path / "model.safetensors"
    assert mod.main(["--config", str(ROOT / "recipes/diarization/configs/tiny.json"),
                     "--data", str(data), "--out", str(out), "--export", str(export)]) == 0
    info = json.loads((out / "train_info.json").read_text())
    assert info["model"] == "speaker_rcnn" and len(info["history"]) == 1
    assert "valid_nn_err" in info["history"][0]
    model = SpeakerRCNN.from_pretrained(export)
    assert model.classifier is None
    # warm restart in a new folder: epochs continue, schedule clock and peak lr are reset
    out2 = tmp_path / "run2"
    assert mod.main(["--config", str(ROOT / "recipes/diarization/configs/tiny.json"),
                     "--data", str(data), "--out", str(out2), "--epochs", "2",
                     "--restart-from", str(out / "last.pt"), "--restart-lr", "1e-4"]) == 0
    state = torch.load(out2 / "last.pt", weights_only=True)
    assert [h["epoch"] for h in state["history"]] == [1, 2]
    assert state["scheduler"]["base_lrs"] == [1e-4]


def test_speaker_weights_repeat_speakers(tmp_path, synth_voice) -> None:
    data = make_data(tmp_path, synth_voice)
    spk = read_manifest(data / "speakers.jsonl", "train")
    spk["s1"][0]["age"] = 9  # a child
    w = speaker_weights(spk, {"s3": 2, "child": 4})
    assert w == {"s0": 1, "s1": 4, "s2": 1, "s3": 2}
    ds = SpeakerCrops(data / "root", spk, 0.5, 1, repeats=2, weights=w)
    assert len(ds) == 16
    seen = [ds[i][1] for i in range(8)]
    assert sorted(seen) == [0, 1, 1, 1, 1, 2, 3, 3]  # indices stay sorted(speakers)


def test_recipe_init_from_shipped_weights(tmp_path, synth_voice) -> None:
    (tmp_path / "data").mkdir()
    data = make_data(tmp_path / "data", synth_voice)
    mod = _train_recipe()
    cfg = json.loads((ROOT / "recipes/diarization/configs/tiny.json").read_text())
    cfg["loss"], cfg["task"] = "amsoftmax", {"scale": 10.0}
    cfg["data"]["speaker_weights"] = {"s0": 2}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    torch.manual_seed(1)
    init = SpeakerRCNN(SpeakerRCNNConfig(channels=(4, 8), pools=((2, 2), (2, 2)),
                                         gru_hidden=8, embedding_dim=8))
    init.save_pretrained(tmp_path / "init.safetensors")
    trainer = mod.build(cfg, data, str(tmp_path / "run"), tmp_path / "init.safetensors")
    model = trainer.model
    ref = init.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items()
               if not k.startswith("classifier."))
    # head rows = speaker centroids (means of unit embeddings), not a random init
    crops = trainer.train_loader.dataset
    w = model.classifier.weight.detach()
    assert float(w.norm(dim=1).max()) <= 1.0 + 1e-5
    assert crops.aug is not None and not crops.deterministic  # restored after the init
    model.eval()
    crops.aug, crops.deterministic = None, True  # the seeded crops the init used
    with torch.no_grad():
        for spk in range(4):
            audio, _ = crops[crops.order.index(spk)]
            cos = torch.nn.functional.cosine_similarity(model(audio).mean(0), w[spk], dim=0)
            assert float(cos) > 0.999


def test_random_crops_follow_the_torch_seed(tmp_path, synth_voice) -> None:
    data = make_data(tmp_path, synth_voice)
    spk = read_manifest(data / "speakers.jsonl", "train")

    def draw(seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        ds = SpeakerCrops(data / "root", spk, 0.5, 2, repeats=2)
        return torch.cat([ds[i][0] for i in range(3)])

    assert torch.equal(draw(3), draw(3))  # a run repeats exactly
    assert not torch.equal(draw(3), draw(4))
