"""Train the RCNN speaker embedding with the shared trainer.

    python recipes/diarization/prepare.py --speechocean ~/data/speechocean762 \
        --librispeech ~/data/resemblyzer/audio_data --out runs/diarization/data
    nice -n 5 python recipes/diarization/train.py --config recipes/diarization/configs/cpu.json \
        --data runs/diarization/data --out runs/diarization/cpu --time-budget 2400
    python recipes/diarization/train.py ... \
        --export src/audiofcn/pretrained/diarizer_rcnn.safetensors

Re-running the same command resumes from ``--out/last.pt``. ``--restart-from OLD/last.pt
--restart-lr LR`` continues a finished run in a new ``--out`` (weights, optimizer moments, epoch
count) with a fresh cosine schedule from LR over the new ``--time-budget``; a new epoch becomes
``best`` only if it beats the old run's last validation score. The best checkpoint is chosen on
the validation speakers (held out of speechocean762 ``train/`` and LibriSpeech), never on
``test/``. ``--export`` writes the best checkpoint without its training head. ``--init-from
MODEL.safetensors`` starts a new run from a shipped (headless) model, the AM-softmax head
initialised to speaker centroids. ``data.speaker_weights`` (e.g. ``{"so": 2, "child": 4}``)
draws speakers of a name prefix or children (``age`` <= 13) more often; ``data.valid_prefix``
("so") selects checkpoints on speechocean762 validation speakers only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from audiofcn.diarization.training import (
    SpeakerAMSoftmaxTask,
    SpeakerAugment,
    SpeakerCrops,
    SpeakerTripletTask,
    collate_speakers,
    read_manifest,
    speaker_weights,
)
from audiofcn.models.base import config_from_dict
from audiofcn.models.speaker_rcnn import SpeakerRCNN, SpeakerRCNNConfig
from audiofcn.train import TrainConfig, Trainer, add_budget_arguments, apply_budget_arguments


def build(cfg: dict[str, Any], data: Path, out: str, init: Path | None = None) -> Trainer:
    torch.manual_seed(cfg["train"].get("seed", 0))
    d = cfg.get("data", {})
    manifest = data / "speakers.jsonl"
    train_spk = read_manifest(manifest, "train")
    valid_spk = read_manifest(manifest, "valid")
    if d.get("valid_prefix"):  # e.g. "so": select checkpoints on speechocean762 speakers only
        valid_spk = {k: v for k, v in valid_spk.items() if k.startswith(d["valid_prefix"])}
    if not train_spk:
        raise SystemExit(f"{manifest}: no training speakers")
    loss = cfg.get("loss", "triplet")
    mcfg = config_from_dict(SpeakerRCNNConfig, {
        **cfg.get("model", {}), "num_classes": len(train_spk) if loss == "amsoftmax" else 0})
    model = SpeakerRCNN(mcfg)
    tcfg = TrainConfig(**{**cfg["train"], "out_dir": out})
    weights = speaker_weights(train_spk, d.get("speaker_weights", {}))
    steps = tcfg.max_steps_per_epoch or d.get("steps_per_epoch", 100)
    repeats = max(1, -(-steps * tcfg.batch_size // sum(weights.values())))
    aug = config_from_dict(SpeakerAugment, d.get("augment", {})) if d.get("augment", True) \
        is not False else None
    train = SpeakerCrops(data / "root", train_spk, d.get("crop_seconds", 1.5),
                         d.get("crops_per_speaker", 3), mcfg.sample_rate, repeats, aug,
                         seed=tcfg.seed, weights=weights)
    valid = SpeakerCrops(data / "root", valid_spk, d.get("crop_seconds", 1.5),
                         d.get("crops_per_speaker", 3), mcfg.sample_rate,
                         d.get("valid_repeats", 2), None, seed=1234,
                         deterministic=True) if valid_spk else None
    task = SpeakerAMSoftmaxTask(**cfg.get("task", {})) if loss == "amsoftmax" \
        else SpeakerTripletTask(**cfg.get("task", {}))
    if init is not None and not (Path(out) / "last.pt").exists():
        init_from(model, init, train if loss == "amsoftmax" else None)
    print(f"{loss}: {len(train_spk)} training ({sum(weights.values())} with weights) / "
          f"{len(valid_spk)} validation speakers, {model.num_parameters()} parameters",
          flush=True)
    return Trainer(model, task, train, valid, tcfg, collate_fn=collate_speakers)


@torch.no_grad()
def init_from(model: SpeakerRCNN, path: Path, crops: SpeakerCrops | None) -> None:
    """Start from a shipped (headless) model's weights; with ``crops``, each row of the new
    AM-softmax head is the mean embedding of a few crops of that speaker (not a random
    direction, so the first steps do not tear the embedding apart)."""
    src = SpeakerRCNN.from_pretrained(path)
    missing, unexpected = model.load_state_dict(src.state_dict(), strict=False)
    if unexpected or any(not k.startswith("classifier.") for k in missing):
        raise SystemExit(f"{path}: not this architecture ({missing} {unexpected})")
    if crops is None or model.classifier is None:
        return
    model.eval()
    # seeded crops without augmentation, so the same init file gives the same head
    aug, det = crops.aug, crops.deterministic
    crops.aug, crops.deterministic = None, True
    for spk in range(len(crops.names)):
        audio, _ = crops[crops.order.index(spk)]
        model.classifier.weight[spk] = model(audio).mean(0)
    crops.aug, crops.deterministic = aug, det
    model.train()
    print(f"initialised from {path} (head: speaker centroids)", flush=True)


def restart_state(src: Path, out: Path, lr: float) -> None:
    """Write ``out/last.pt`` from a finished run's ``src`` with the schedule clock reset (time
    and base learning rate), so the trainer resumes it as a warm restart. The best score starts
    at the old run's last validation score. Does nothing if ``out/last.pt`` exists (resume)."""
    dst = out / "last.pt"
    if dst.exists():
        return
    state = torch.load(src, map_location="cpu", weights_only=True)
    state["trained_seconds"] = 0.0
    last = state["history"][-1] if state["history"] else {}
    state["best_loss"] = float(last.get("valid_loss", float("inf")))
    state["scheduler"]["base_lrs"] = [lr] * len(state["scheduler"]["base_lrs"])
    for group in state["optimizer"]["param_groups"]:
        group["initial_lr"] = lr
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "last.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(dst)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the RCNN speaker embedding")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/diarization/data"))
    ap.add_argument("--out", default="runs/diarization/run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--export", type=Path, default=None,
                    help="after training, write OUT/best.safetensors without its head here")
    ap.add_argument("--restart-from", type=Path, default=None,
                    help="a finished run's last.pt to continue with a fresh schedule")
    ap.add_argument("--init-from", type=Path, default=None,
                    help="start a new run from these (headless, shipped) model weights")
    ap.add_argument("--restart-lr", type=float, default=None,
                    help="peak learning rate of the restart (default: the config's)")
    add_budget_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config.read_text())
    cfg["train"] = apply_budget_arguments(cfg["train"], args)
    if args.restart_from is not None:
        restart_state(args.restart_from, Path(args.out),
                      args.restart_lr or float(cfg["train"]["lr"]))
    trainer = build(cfg, args.data, args.out, args.init_from)
    hist = trainer.fit()
    if hist:
        print(json.dumps(hist[-1]))
    if args.export is not None:
        best = SpeakerRCNN.from_pretrained(Path(args.out) / "best.safetensors")
        best.without_classifier().save_pretrained(args.export)
        print(f"exported {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
