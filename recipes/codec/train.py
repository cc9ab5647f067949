"""Train SoundStream with the shared trainer (DDP-capable: run it under torchrun).

    python recipes/codec/prepare.py --out runs/codec/data
    python recipes/codec/train.py --config recipes/codec/configs/small.json \
        --data runs/codec/data --out runs/codec/small
    torchrun --nproc_per_node=2 recipes/codec/train.py ...   # several processes
    python recipes/codec/train.py --config recipes/codec/configs/gpu.json \
        --init src/audiofcn/pretrained/soundstream_16k_c16.safetensors ...  # continue
    python recipes/codec/train.py --config recipes/codec/configs/lyra_finetune.json \
        --init lyra --data runs/codec/data --out runs/codec/lyra_ft  # fine-tune the Lyra port

``--init`` takes a checkpoint file or a shipped codec name (``lyra``, ``c16``). A Lyra v2 port
(``lyra_soundstream``) is trained as it is (its architecture comes from the checkpoint; the
config's ``model`` section is not used); a SoundStream checkpoint must fit the config's preset.

Checkpoints (``best/last.safetensors``, resumable ``last.pt``) and ``train_info.json`` go to
``--out``; re-running the same command resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from audiofcn.codec import load_codec
from audiofcn.codec.training import RandomCropDataset, SoundStreamTask, SoundStreamTaskConfig
from audiofcn.io import load_audio, read_manifest
from audiofcn.models.base import config_from_dict
from audiofcn.models.lyra_soundstream import LyraSoundStream
from audiofcn.models.soundstream import SoundStream, soundstream_preset
from audiofcn.train import TrainConfig, Trainer, add_budget_arguments, apply_budget_arguments


def load_waves(manifest: Path, sr: int, max_files: int | None = None) -> list[torch.Tensor]:
    if not manifest.exists():
        return []
    recs = read_manifest(manifest)[:max_files]
    return [load_audio(r.path, sr=sr)[0][0] for r in recs]


def build(cfg: dict[str, Any], data: Path, out: str, init: str | Path | None = None
          ) -> Trainer:
    pre = load_codec(init) if init is not None else None
    model: SoundStream | LyraSoundStream
    if isinstance(pre, LyraSoundStream):
        model = pre.train()
    else:
        model = SoundStream(soundstream_preset(cfg["model"]["preset"],
                                               **cfg["model"].get("overrides", {})))
        if pre is not None:  # continue from another run's weights (same architecture)
            model.load_state_dict(pre.state_dict())
    sr = model.config.sample_rate
    dcfg = cfg["data"]
    seg = int(dcfg["segment_seconds"] * sr)
    tcfg = TrainConfig(**{**cfg["train"], "out_dir": out})
    n_items = tcfg.batch_size * (tcfg.max_steps_per_epoch or dcfg.get("steps_per_epoch", 100))
    train = RandomCropDataset(load_waves(data / "train.jsonl", sr), seg, n_items,
                              noise=load_waves(data / "noise.jsonl", sr),
                              denoise_prob=dcfg.get("denoise_prob", 0.0), seed=tcfg.seed)
    valid = RandomCropDataset(load_waves(data / "valid.jsonl", sr), seg,
                              dcfg.get("valid_items", 32), seed=1234, deterministic=True)
    task_cfg = config_from_dict(SoundStreamTaskConfig, {**cfg.get("task", {}),
                                                        "sample_rate": sr})
    trainer_device = tcfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
    task = SoundStreamTask(task_cfg, device=trainer_device)
    return Trainer(model, task, train, valid, tcfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the SoundStream codec")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/codec/data"))
    ap.add_argument("--out", default="runs/codec/run")
    ap.add_argument("--threads", type=int, default=1)
    add_budget_arguments(ap)
    ap.add_argument("--init", help="start from these weights: a checkpoint file or a shipped "
                    "codec ('lyra', 'c16')")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config.read_text())
    cfg["train"] = apply_budget_arguments(cfg["train"], args)
    trainer = build(cfg, args.data, args.out, args.init)
    history = trainer.fit()
    if history and trainer.ctx.is_main:
        print(json.dumps(history[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
