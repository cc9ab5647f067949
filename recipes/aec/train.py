"""Train the echo canceller on simulated echo scenarios with the shared trainer.

    python recipes/aec/prepare.py --out runs/aec/data
    python recipes/aec/train.py --config recipes/aec/configs/default.json \
        --data runs/aec/data --out runs/aec/default
    python recipes/aec/train.py --config recipes/aec/configs/echo_only.json \
        --data runs/aec/data --out runs/aec/echo_only          # ablation: echo mask only
    python recipes/aec/train.py --config recipes/aec/configs/finetune.json \
        --init runs/aec/default/best.safetensors --out runs/aec/finetune   # second phase

Examples are simulated on the fly (seeded) from the training talkers, noises and impulse
responses that ``prepare.py`` listed; validation uses the validation talker. Checkpoints
(``best/last.safetensors``, resumable ``last.pt``) and ``train_info.json`` go to ``--out``;
re-running the same command resumes. Runs under ``torchrun`` for several processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiofcn.aec.hybrid import WithLinearStage
from audiofcn.aec.linear import KalmanConfig
from audiofcn.aec.simulation import AECSimConfig, AECSimDataset, TalkerAECSimDataset
from audiofcn.aec.task import EchoCancellerTask
from audiofcn.io import read_manifest
from audiofcn.models.base import config_from_dict
from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig
from audiofcn.train import TrainConfig, Trainer, add_budget_arguments, apply_budget_arguments

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import DEFAULT_ROOT, load_pool  # noqa: E402

Pools = dict[str, list[Any]]


def balanced(root: Path, manifest: Path, split: str) -> list[np.ndarray]:
    """Talker pool where every speaker weighs the same (FSDD has 150 digits per speaker,
    others a few long utterances): each speaker's list is repeated to the longest one."""
    by_group: dict[str, list[np.ndarray]] = defaultdict(list)
    recs = [r for r in read_manifest(manifest) if r.split == split]
    for r in recs:
        by_group[r.group or r.path] += load_pool(root, [r], split)
    longest = max(len(v) for v in by_group.values())
    pool = []
    for v in by_group.values():
        pool += (v * (longest // len(v) + 1))[:longest]
    return pool


def by_talker(root: Path, manifest: Path, split: str) -> dict[str, list[np.ndarray]]:
    """Utterances of one split grouped by speaker (manifest ``group``)."""
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in read_manifest(manifest):
        if r.split == split:
            out[r.group or r.path] += load_pool(root, [r], split)
    return dict(out)


def load_pools(root: Path, data: Path, measured_rir_repeat: int,
               extra_near: list[str] = ()) -> tuple[Pools, Pools]:
    """Training and validation pools. ``extra_near``: manifests (in ``data``, paths relative
    to it, e.g. written by ``prepare_voice.py``) of extra near-end-only training talkers."""
    bank = np.load(data / "rir_bank_train.npz")
    rirs = [bank[k] for k in bank.files]
    rirs += load_pool(root, read_manifest(data / "rirs.jsonl"), "train") * measured_rir_repeat
    noise = load_pool(root, read_manifest(data / "noise.jsonl"), "train")
    talkers = by_talker(root, data / "speech.jsonl", "train")
    roles = dict.fromkeys(talkers, "both")
    for name in extra_near:
        for spk, utts in by_talker(data, data / name, "train").items():
            talkers[f"extra:{spk}"], roles[f"extra:{spk}"] = utts, "near_only"
    train = {"speech": balanced(root, data / "speech.jsonl", "train"), "noise": noise,
             "rirs": rirs, "talkers": list(talkers.values()), "roles": list(roles.values())}
    valid = {"speech": balanced(root, data / "speech.jsonl", "valid"), "noise": noise,
             "rirs": rirs}
    return train, valid


def build(cfg: dict[str, Any], train_pools: Pools, valid_pools: Pools, out: str,
          init: Path | None = None) -> Trainer:
    model = EchoCanceller(config_from_dict(EchoCancellerConfig, cfg["model"]))
    if init is not None:  # fine-tune: start from another run's weights (same config)
        state = EchoCanceller.from_pretrained(init).state_dict()
        # ... or a run without the opt-in refinement: its output conv starts at zero, so the
        # fine-tune starts from exactly the init model's masks; any other mismatch is an error
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if ".refine." not in k]
        if missing or unexpected:
            raise RuntimeError(f"--init {init}: missing {missing}, unexpected {unexpected}")
    d = cfg["data"]
    # hybrid: simulate linear_warmup seconds more and train on the end, where the linear
    # stage has converged (see WithLinearStage)
    warmup = d.get("linear_warmup", 0.0) if model.config.hybrid else 0.0
    sim = AECSimConfig(sample_rate=model.config.sample_rate, duration=d["duration"] + warmup)
    tcfg = TrainConfig(**{**cfg["train"], "out_dir": out})

    def dataset(pools: Pools, n: int, seed: int) -> AECSimDataset:
        return AECSimDataset(n, seed, pools["speech"], pools["speech"], pools["noise"],
                             pools["rirs"], sim, simulate_rooms=False)

    if d.get("distinct_talkers", False):  # near-end and far-end never the same speaker
        train = TalkerAECSimDataset(d["train_items"], tcfg.seed * 1_000_003,
                                    train_pools["talkers"], train_pools["noise"],
                                    train_pools["rirs"], sim, simulate_rooms=False,
                                    roles=train_pools["roles"])
    else:  # the original recipe: both ends from one speaker-balanced pool
        train = dataset(train_pools, d["train_items"], seed=tcfg.seed * 1_000_003)
    valid = dataset(valid_pools, d["valid_items"], seed=10_000_000)
    if model.config.hybrid:  # the linear stage runs first, per example, in the loader
        linear = KalmanConfig(**model.config.linear_stage)
        keep = round(d["duration"] * model.config.sample_rate) if warmup else None
        train, valid = (WithLinearStage(train, linear, keep), WithLinearStage(valid, linear, keep))
    return Trainer(model, EchoCancellerTask(**cfg.get("task", {})), train, valid, tcfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="train the echo canceller")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("AUDIOFCN_DATA_ROOT", DEFAULT_ROOT)))
    ap.add_argument("--out", default="runs/aec/default")
    ap.add_argument("--threads", type=int, default=1)
    add_budget_arguments(ap)
    ap.add_argument("--init", type=Path, help="start from these weights (fine-tuning)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = json.loads(args.config.read_text())
    cfg["train"] = apply_budget_arguments(cfg["train"], args)
    train, valid = load_pools(args.data_root, args.data, cfg["data"]["measured_rir_repeat"],
                              cfg["data"].get("extra_near", []))
    trainer = build(cfg, train, valid, args.out, args.init)
    print(f"{trainer.model.num_parameters()} parameters, {len(train['speech'])} training "
          f"utterances (balanced), {len(train['talkers'])} talkers "
          f"({train['roles'].count('near_only')} near-end only), {len(train['rirs'])} "
          "impulse responses", flush=True)
    history = trainer.fit()
    if history:
        print(json.dumps(history[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
