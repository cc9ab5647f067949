"""Train a separator (paper CNN, FCN variant or the Open-Unmix peer) with the shared trainer.

Stages (each one :class:`audiofcn.train.Trainer` run, resumable, in its own folder):

1. ``pretrain/`` (when the config has ``"pretrain"``): autoencoder on IBM-masked vocal
   spectrograms (:class:`~audiofcn.separation.MaskedVocalAETask`);
2. ``train/``: the IBM mask with label smoothing and cross-entropy
   (:class:`~audiofcn.separation.IBMMaskTask`), initialised from stage 1; for the Open-Unmix
   peer, its own vocal-magnitude MSE objective.

The final weights are copied to ``<out>/model.safetensors``.

Usage::

    python recipes/separation/train.py --config fcn_mir1k --out runs/separation/fcn_mir1k
    torchrun --nproc_per_node=2 recipes/separation/train.py --config tiny --out /tmp/sep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import REPO, build_model, load_config, load_split, mixture_statistics  # noqa: E402
from mixes import build_mix_dataset, sample_pairs  # noqa: E402

from audiofcn.separation import IBMMaskTask, MaskedVocalAETask, StemSegments  # noqa: E402
from audiofcn.train import TrainConfig, Trainer  # noqa: E402


def train(cfg: dict, out: Path, manifest: Path, threads: int = 1, progress: bool = True,
          limit: int | None = None, audio_root: Path | None = None) -> Path:
    torch.set_num_threads(threads)
    sr = cfg.get("sample_rate", 16000)
    model = build_model(cfg)
    seg = int(cfg.get("segment_seconds", 2.0) * sr)
    valid_items = load_split(manifest, "valid", sr, limit, audio_root)
    if cfg.get("mix"):  # voices and accompaniments drawn independently (mixes.py)
        train_ds, n_train = build_mix_dataset(cfg["mix"], sr, seg, cfg.get("items_per_epoch", 512))
        train_pairs = sample_pairs(train_ds, 128)  # for Open-Unmix's input statistics
    else:
        train_items = load_split(manifest, "train", sr, limit, audio_root)
        n_train = len(train_items)
        train_pairs = [(v, a) for _, v, a in train_items]
        train_ds = StemSegments(train_pairs, seg, cfg.get("items_per_epoch", 512))
    valid_pairs = [(v, a) for _, v, a in valid_items] or train_pairs[:1]
    valid_ds = StemSegments(valid_pairs, seg, cfg.get("valid_items", 64), fixed=True, seed=1)
    patch = getattr(model, "patch_frames", None)
    tcfg = cfg.get("task", {})
    common_train = {"seed": cfg.get("seed", 0), "progress": progress}
    t0 = time.perf_counter()
    if cfg["model"] == "openunmix":
        from audiofcn.separation.peers import VocalMagnitudeTask

        mean, std = mixture_statistics(train_pairs, model.config.stft)
        model.set_input_statistics(mean, std)
        task = VocalMagnitudeTask()
    else:
        task = IBMMaskTask(tcfg.get("label_smoothing", 0.02), patch,
                           tcfg.get("patches_per_item", 8), tcfg.get("recon_weight", 0.0))
        if cfg.get("pretrain"):
            ae = MaskedVocalAETask(patch_frames=patch,
                                   patches_per_item=tcfg.get("patches_per_item", 8))
            pre = Trainer(model, ae, train_ds, valid_ds, TrainConfig(
                out_dir=str(out / "pretrain"), **common_train, **cfg["pretrain"]))
            pre.fit()
            # Fine-tune from the autoencoder's last weights (its reconstruction loss is not
            # the separation objective, so "best" there means nothing for stage 2).
            model.load_state_dict(pre.model.state_dict())
    trainer = Trainer(model, task, train_ds, valid_ds,
                      TrainConfig(out_dir=str(out / "train"), **common_train, **cfg["train"]))
    trainer.fit()
    final = out / "model.safetensors"
    if trainer.ctx.is_main:
        shutil.copyfile(out / "train" / "best.safetensors", final)
        (out / "recipe.json").write_text(json.dumps(
            {"config": cfg, "manifest": str(manifest), "train_clips": n_train,
             "valid_clips": len(valid_items), "seconds": time.perf_counter() - t0,
             "parameters": model.num_parameters()}, indent=2))
    return final


def main() -> None:
    ap = argparse.ArgumentParser(description="train a singing-voice separator")
    ap.add_argument("--config", required=True, help="configs/<name>.json or a path")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--manifest", type=Path, default=None,
                    help="manifest.jsonl from prepare.py (default: the config's)")
    ap.add_argument("--audio-root", type=Path, default=None,
                    help="root of the manifest's relative paths (default: its folder), e.g. "
                         "the dataset folder for `audiofcn data manifest` output")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    cfg = load_config(args.config)
    manifest = args.manifest or REPO / cfg["manifest"]
    final = train(cfg, args.out, manifest, args.threads, not args.no_progress,
                  audio_root=args.audio_root)
    if os.environ.get("RANK", "0") == "0":  # once under torchrun
        print(f"model -> {final}")


if __name__ == "__main__":
    main()
