"""Train a tagger / classifier with the one audiofcn trainer.

  python recipes/tagging/train.py --config synth_fcn \
      --manifest runs/tagging/synth/manifest.jsonl --out runs/tagging/synth_fcn
  torchrun --nproc_per_node=2 recipes/tagging/train.py --config tiny ...   # DDP (gloo on CPU)

The config (``configs/<name>.json``) names the model (``{"model", "variant", "config"}``), the
task (``multi_label``), training settings (``train``: any ``TrainConfig`` field) and data
augmentation. The label vocabulary comes from the manifest. Training reads only the ``train``
split and selects the best checkpoint on ``valid``; the test split is never touched here.
Output: ``best.safetensors``, ``last.safetensors``, ``last.pt`` (resume), ``train_info.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from common import build_model, labels_of, load_config

from audiofcn.train import add_budget_arguments, apply_budget_arguments


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="name in configs/ or a JSON path")
    p.add_argument("--manifest", required=True)
    p.add_argument("--audio-root", help="folder the manifest's relative paths start "
                   "from (default: the manifest's folder; for data_manifests builds, "
                   "the dataset root)")
    p.add_argument("--out", required=True)
    p.add_argument("--max-steps-per-epoch", type=int, help="override (tiny/CI runs)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    add_budget_arguments(p)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)

    import torch

    from audiofcn.io import read_manifest
    from audiofcn.train import TrainConfig, Trainer, distributed_context
    from audiofcn.train.classification import ClipDataset, TaggingTask

    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    multi_label = bool(cfg.get("multi_label", True))
    manifest = Path(args.manifest)
    records = read_manifest(manifest)
    labels = cfg.get("labels") or labels_of(records, multi_label)
    model = build_model(cfg["model"], labels, multi_label)
    mc = model.config
    root = Path(args.audio_root) if args.audio_root else manifest.parent
    train_recs = [r for r in records if r.split == "train"]
    valid_recs = [r for r in records if r.split == "valid"]
    if not train_recs:
        sys.exit(f"{manifest}: no records in the train split")
    ctx = distributed_context(cfg.get("train", {}).get("device"))
    show = not args.no_progress and ctx.is_main
    train = ClipDataset(train_recs, root, labels, mc.sample_rate, mc.input_length, multi_label,
                        random_crop=True, gain_jitter_db=cfg.get("gain_jitter_db", 0.0),
                        progress=show, preload=cfg.get("preload", True),
                        time_shift=bool(cfg.get("time_shift", False)),
                        speed_perturb=float(cfg.get("speed_perturb", 0.0)))
    valid = ClipDataset(valid_recs, root, labels, mc.sample_rate, mc.input_length, multi_label,
                        random_crop=False, progress=show, preload=cfg.get("preload", True))
    tc = {f.name for f in dataclasses.fields(TrainConfig)}
    train_section = apply_budget_arguments(cfg.get("train", {}), args)
    train_cfg = TrainConfig(**{k: v for k, v in train_section.items() if k in tc})
    train_cfg.out_dir = args.out
    train_cfg.progress = not args.no_progress
    if args.max_steps_per_epoch is not None:
        train_cfg.max_steps_per_epoch = args.max_steps_per_epoch
    if ctx.is_main:
        print(f"{cfg['name']}: {model.model_name}, {model.num_parameters():,} parameters, "
              f"{len(labels)} labels, {len(train)} train / {len(valid)} valid clips, "
              f"world size {ctx.world_size}", flush=True)
    task = TaggingTask(multi_label, cfg.get("label_smoothing", 0.0))
    trainer = Trainer(model, task, train, valid, train_cfg, ctx=ctx)
    history = trainer.fit()
    if ctx.is_main and history:
        print(f"best valid loss {trainer.best_loss:.4f} -> {Path(args.out) / 'best.safetensors'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
