"""Train the similarity embedding (self-supervised triplet loss) with the shared trainer.

    python recipes/similarity/prepare.py --out runs/similarity/data
    python recipes/similarity/train.py --config recipes/similarity/configs/small.json \
        --data runs/similarity/data --out runs/similarity/small
    torchrun --nproc_per_node=2 recipes/similarity/train.py ...   # several processes

    # the shipped model: 6 epochs as above, then 2 epochs with real Opus in the chain
    python recipes/similarity/train.py --config recipes/similarity/configs/small_opus_ft.json \
        --init runs/similarity/small/best.safetensors --out runs/similarity/small_opus_ft

    # more music: add real recordings (recipes/similarity/real.py says which files may be
    # trained on; the evaluation leaves exactly those out of its catalogs)
    python recipes/similarity/train.py --config recipes/similarity/configs/gpu_ccby.json \
        --init src/audiofcn/pretrained/embedding_small.safetensors --data runs/similarity/data \
        --real-root ../shared/data --out runs/similarity/gpu_ccby --time-budget 480

Re-running the same command resumes from ``--out/last.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import PairedViews, TripletTask, load_split  # noqa: E402
from notes import render_note_clips  # noqa: E402
from real import load_training_audio  # noqa: E402

from audiofcn.data.transforms import AugmentConfig  # noqa: E402
from audiofcn.models.base import config_from_dict  # noqa: E402
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet  # noqa: E402
from audiofcn.train import TrainConfig, Trainer  # noqa: E402
from audiofcn.train.budget_args import add_budget_arguments, apply_budget_arguments  # noqa: E402


def build(cfg: dict[str, Any], data: Path, out: str, init: Path | None = None,
          real_root: Path | None = None) -> Trainer:
    torch.manual_seed(cfg["train"].get("seed", 0))
    if init is not None:  # fine-tune: weights and architecture from a checkpoint
        model = EmbeddingNet.from_pretrained(init).train()
        mcfg = model.config
    else:
        mcfg = config_from_dict(EmbeddingConfig, cfg.get("model", {}))
        model = EmbeddingNet(mcfg)
    sr, seg = mcfg.sample_rate, mcfg.segment_samples
    d = cfg.get("data", {})
    tcfg = TrainConfig(**{**cfg["train"], "out_dir": out})
    aug = config_from_dict(AugmentConfig, {**d.get("augment", {}), "sample_rate": sr})
    train_w, _ = load_split(data, "train", sr, d.get("max_tracks"))
    valid_w, _ = load_split(data, "valid", sr, d.get("max_tracks"))
    repeats = [1] * len(train_w)
    real = d.get("real")  # {"sets": [...], "seconds_per_item": 10, "max_repeats": 12}
    if real:
        if real_root is None:
            raise SystemExit("the config trains on real recordings: pass --real-root")
        real_w, names = load_training_audio(real_root, real["sets"], sr)
        per = real.get("seconds_per_item", 10.0) * sr
        repeats += [min(real.get("max_repeats", 12), max(1, round(w.shape[0] / per)))
                    for w in real_w]
        train_w = [*train_w, *real_w]
        print(f"real recordings: {len(real_w)} files of {real['sets']} "
              f"({sum(w.shape[0] for w in real_w) / sr / 60:.1f} min), "
              f"{sum(repeats[-len(real_w):])} of {sum(repeats)} items per pass", flush=True)
    notes = d.get("notes")  # {"n": 600, "seed": 5, "seconds": 4.0}: rendered single notes
    if notes:
        clips = render_note_clips(notes["n"], notes.get("seed", 5), sr,
                                  notes.get("seconds", 4.0))
        train_w, repeats = [*train_w, *clips], [*repeats, *[1] * len(clips)]
        print(f"rendered note clips: {len(clips)}", flush=True)
    steps = tcfg.max_steps_per_epoch or d.get("steps_per_epoch", 50)
    train = PairedViews(train_w, seg, sr, tcfg.batch_size * steps, aug,
                        d.get("jitter", 0.75), d.get("p_clean_anchor", 0.5), seed=tcfg.seed,
                        repeats=repeats)
    valid = PairedViews(valid_w, seg, sr, max(len(valid_w), d.get("valid_items", 0)), aug,
                        d.get("jitter", 0.75), d.get("p_clean_anchor", 0.5), seed=4321,
                        deterministic=True) if valid_w else None
    task = TripletTask(**cfg.get("task", {}))
    return Trainer(model, task, train, valid, tcfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the similarity embedding net")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/similarity/data"))
    ap.add_argument("--out", default="runs/similarity/run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", type=Path, default=None,
                    help="start from these weights (fine-tuning); the config's model is ignored")
    ap.add_argument("--real-root", type=Path, default=None,
                    help="data root with the real recordings a config's data.real names")
    ap.add_argument("--workers", type=int, default=None,
                    help="override train.num_workers (DataLoader processes; the augmentation "
                         "chain is CPU-bound)")
    add_budget_arguments(ap)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config.read_text())
    cfg["train"] = apply_budget_arguments(cfg["train"], args)
    if args.workers is not None:
        cfg["train"]["num_workers"] = args.workers
    trainer = build(cfg, args.data, args.out, args.init, args.real_root)
    hist = trainer.fit()
    if hist:
        print(json.dumps(hist[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
