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


def load_real_pools(data: Path, measured: Pools,
                    recorded_noise: bool = True) -> tuple[Pools, Pools]:
    """Pools from ``prepare_talkers.py`` (speechocean762 train/ speakers and LibriSpeech,
    split by speaker; ESC-10 noise, folds 1-4 train, 5 validation) plus ``measured``'s echo
    paths and (``recorded_noise``) its recorded training noises (``prepare.py``'s
    speechbrain / pyroomacoustics clips, Apache-2.0 / MIT: off for a model trained on CC BY /
    CC0 audio only; config ``data.recorded_noise``). Audio stays int16 in memory (the
    simulator scales every part to its level)."""
    talkers: dict[str, dict[str, list[np.ndarray]]] = {"train": defaultdict(list),
                                                        "valid": defaultdict(list)}
    with np.load(data / "talkers_real.npz") as z:
        for k in z.files:
            split, spk, _ = k.split("/")
            talkers[split][spk].append(z[k])
    noise: dict[str, list[np.ndarray]] = {"train": [], "valid": []}
    with np.load(data / "noise_real.npz") as z:
        for k in z.files:
            noise[k.split("/")[0]].append(z[k])
    pools = []
    for split in ("train", "valid"):
        spk = talkers[split]
        pools.append({"talkers": list(spk.values()), "roles": ["both"] * len(spk),
                      "noise": noise[split] + (measured["noise"] if split == "train"
                                                 and recorded_noise else []),
                      "rirs": measured["rirs"], "speech": [u for v in spk.values() for u in v]})
    return pools[0], pools[1]


def init_weights(model: EchoCanceller, init: Path) -> None:
    """Start from another run's weights. The same layout, or one without the opt-in
    refinement (its output conv starts at zero, so the model starts from exactly the init
    model's masks), or an end-to-end (two-input) model for a hybrid one: its microphone
    weights of the first conv go to the linear output's input channel (the masks act on
    the linear output) and its reference weights to the reference; the microphone and echo
    estimate channels start at zero, so the hybrid starts as the end-to-end network run on
    the linear stage's output. Any other mismatch is an error."""
    state = EchoCanceller.from_pretrained(init).state_dict()
    own = model.state_dict()
    for k in ("encoder.0.weight_real", "encoder.0.weight_imag"):
        if k in state and state[k].shape[1] == 2 and own[k].shape[1] == 4:
            w = torch.zeros_like(own[k])
            w[:, 1], w[:, 3] = state[k][:, 0], state[k][:, 1]  # [mic, linear, echo, ref]
            state[k] = w
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if ".refine." not in k]
    if missing or unexpected:
        raise RuntimeError(f"--init {init}: missing {missing}, unexpected {unexpected}")


def sim_config(cfg: dict[str, Any], model_config: EchoCancellerConfig,
               train: bool = False) -> AECSimConfig:
    """The simulator's settings: ``data.duration`` (+ ``data.linear_warmup`` for a hybrid:
    simulate that much more and train on the end, where the linear stage has converged, see
    ``WithLinearStage``) and the ``data.sim`` overrides of ``AECSimConfig`` fields; with
    ``train``, ``data.train_sim`` overrides on top (e.g. more double talk in training while
    the validation clips stay those of ``data.sim``)."""
    d = cfg["data"]
    warmup = d.get("linear_warmup", 0.0) if model_config.hybrid else 0.0
    over = {**d.get("sim", {}), **(d.get("train_sim", {}) if train else {})}
    return AECSimConfig(sample_rate=model_config.sample_rate, duration=d["duration"] + warmup,
                        **{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()})


def valid_dataset(cfg: dict[str, Any], sim: AECSimConfig, pools: Pools) -> AECSimDataset:
    d = cfg["data"]
    if d.get("real_talkers", False):  # held-out speakers, never the same pair
        return TalkerAECSimDataset(d["valid_items"], 10_000_000, pools["talkers"],
                                   pools["noise"], pools["rirs"], sim, simulate_rooms=False)
    return AECSimDataset(d["valid_items"], 10_000_000, pools["speech"], pools["speech"],
                         pools["noise"], pools["rirs"], sim, simulate_rooms=False)


def with_linear(cfg: dict[str, Any], model_config: EchoCancellerConfig,
                data: Any) -> WithLinearStage:
    """The linear stage runs first, per example, in the loader (``keep_last``: the last
    ``data.duration`` seconds when there is a warm-up)."""
    d = cfg["data"]
    keep = (round(d["duration"] * model_config.sample_rate)
            if d.get("linear_warmup", 0.0) else None)
    return WithLinearStage(data, KalmanConfig(**model_config.linear_stage), keep)


def build(cfg: dict[str, Any], train_pools: Pools, valid_pools: Pools, out: str,
          init: Path | None = None) -> Trainer:
    model = EchoCanceller(config_from_dict(EchoCancellerConfig, cfg["model"]))
    if init is not None:  # fine-tune: start from another run's weights
        init_weights(model, init)
    d = cfg["data"]
    sim, train_sim = sim_config(cfg, model.config), sim_config(cfg, model.config, train=True)
    tcfg = TrainConfig(**{**cfg["train"], "out_dir": out})
    if d.get("distinct_talkers", False) or d.get("real_talkers", False):
        # near-end and far-end never the same speaker
        train = TalkerAECSimDataset(d["train_items"], tcfg.seed * 1_000_003,
                                    train_pools["talkers"], train_pools["noise"],
                                    train_pools["rirs"], train_sim, simulate_rooms=False,
                                    roles=train_pools["roles"])
    else:  # the original recipe: both ends from one speaker-balanced pool
        train = AECSimDataset(d["train_items"], tcfg.seed * 1_000_003, train_pools["speech"],
                              train_pools["speech"], train_pools["noise"], train_pools["rirs"],
                              train_sim, simulate_rooms=False)
    valid = valid_dataset(cfg, sim, valid_pools)
    if model.config.hybrid:
        train, valid = with_linear(cfg, model.config, train), with_linear(cfg, model.config,
                                                                          valid)
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
    if cfg["data"].get("real_talkers", False):  # prepare_talkers.py's speakers and noise
        train, valid = load_real_pools(args.data, train,
                                       cfg["data"].get("recorded_noise", True))
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
