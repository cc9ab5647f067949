"""One trainer for every task.

A :class:`Task` says how to turn a batch into a loss (and validation metrics); the trainer does
the rest: optimizer and schedule, DDP under torchrun, validation each epoch, best checkpoint by
validation loss, resumable training state, and ``train_info.json`` (config, git commit, history)
next to the weights.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from audiofcn.models.base import PretrainedModel
from audiofcn.train.distributed import DistributedContext, distributed_context


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"
    epochs: int = 10
    batch_size: int = 16
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # "cosine" (with warm-up) or "constant"
    warmup_steps: int = 0
    grad_clip: float | None = 5.0
    max_steps_per_epoch: int | None = None  # cap for tiny/CI runs
    num_workers: int = 0
    seed: int = 0
    device: str | None = None  # None: cuda when available
    resume: bool = True  # continue from out_dir/last.pt when present
    progress: bool = True
    # Wall-clock budget in seconds (None: none). Training stops at the first epoch end past it,
    # and the cosine schedule anneals over whichever runs out first, steps or time, so a run
    # sized for a fast machine still ends with a small learning rate on a slow one.
    time_budget_s: float | None = None
    # Learning-rate factors by parameter name: every parameter whose name contains a key trains
    # at lr x factor (first matching key), e.g. {"refine.": 10.0} for layers added to a trained
    # model. Every key must match some parameter.
    lr_scale: dict[str, float] = field(default_factory=dict)


class Task(Protocol):
    """How a batch becomes a loss. ``training_step`` returns the loss to minimise and floats to
    log; ``validation_step`` returns floats whose ``"loss"`` selects the best checkpoint.

    A task with its own trainable state (a GAN discriminator and its optimizer) may also define
    ``state_dict()`` / ``load_state_dict(state)``; the trainer saves and resumes it with the rest.
    """

    def training_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor,
                                                                   dict[str, float]]: ...

    def validation_step(self, model: nn.Module, batch: Any) -> dict[str, float]: ...


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class Trainer:
    def __init__(self, model: PretrainedModel, task: Task, train_data: Dataset,
                 valid_data: Dataset | None, config: TrainConfig,
                 ctx: DistributedContext | None = None, collate_fn: Any = None) -> None:
        self.config = config
        self.ctx = ctx or distributed_context(config.device)
        torch.manual_seed(config.seed + self.ctx.rank)
        self.model = model.to(self.ctx.device)
        self.task = task
        self.out_dir = Path(config.out_dir)
        self.train_sampler = DistributedSampler(train_data, self.ctx.world_size, self.ctx.rank,
                                                shuffle=True, seed=config.seed) \
            if self.ctx.is_distributed else None
        self.train_loader = DataLoader(train_data, batch_size=config.batch_size,
                                       shuffle=self.train_sampler is None,
                                       sampler=self.train_sampler, drop_last=len(train_data) >
                                       config.batch_size * self.ctx.world_size,
                                       num_workers=config.num_workers, collate_fn=collate_fn)
        self.valid_loader = None
        if valid_data is not None and len(valid_data) > 0:
            vs = DistributedSampler(valid_data, self.ctx.world_size, self.ctx.rank,
                                    shuffle=False) if self.ctx.is_distributed else None
            self.valid_loader = DataLoader(valid_data, batch_size=config.batch_size, sampler=vs,
                                           num_workers=config.num_workers,
                                           collate_fn=collate_fn)
        self.wrapped: nn.Module = DistributedDataParallel(self.model) \
            if self.ctx.is_distributed else self.model
        self.optimizer = self._make_optimizer()
        self.trained_seconds = 0.0  # summed over resumed runs; drives the time budget
        self._fit_start: float | None = None
        steps = config.epochs * self.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: self._lr_factor(s, steps))
        self.epoch = 0
        self.step = 0
        self.best_loss = math.inf
        self.history: list[dict[str, float]] = []
        if config.resume and (self.out_dir / "last.pt").exists():
            self._load_state(self.out_dir / "last.pt")

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.train_loader)
        return min(n, self.config.max_steps_per_epoch) if self.config.max_steps_per_epoch else n

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        unmatched = [k for k in c.lr_scale if not any(k in n for n, _ in named)]
        if unmatched:
            raise ValueError(f"lr_scale keys {unmatched} match no parameter name")
        groups: dict[float, list[nn.Parameter]] = {}
        for name, p in named:
            scale = next((f for key, f in c.lr_scale.items() if key in name), 1.0)
            groups.setdefault(scale, []).append(p)
        params = [{"params": ps, "lr": c.lr * scale} for scale, ps in groups.items()]
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=0.9, nesterov=True,
                                   weight_decay=c.weight_decay)
        raise ValueError(f"unknown optimizer {c.optimizer!r} (use 'adamw' or 'sgd')")

    def elapsed_seconds(self) -> float:
        """Training wall-clock time so far, earlier (resumed) runs included."""
        running = 0.0 if self._fit_start is None else time.perf_counter() - self._fit_start
        return self.trained_seconds + running

    def _time_is_up(self) -> bool:
        budget = self.config.time_budget_s
        up = budget is not None and self.elapsed_seconds() >= budget
        # Every rank must stop at the same epoch under DDP: rank 0's clock decides.
        return bool(self.ctx.all_reduce_mean(float(up) if self.ctx.is_main else 0.0) > 0)

    def _lr_factor(self, step: int, total: int) -> float:
        c = self.config
        if c.warmup_steps and step < c.warmup_steps:
            return (step + 1) / c.warmup_steps
        if c.schedule == "constant":
            return 1.0
        progress = (step - c.warmup_steps) / max(1, total - c.warmup_steps)
        if c.time_budget_s:
            progress = max(progress, self.elapsed_seconds() / c.time_budget_s)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    # --- state -------------------------------------------------------------------------------
    def _save_state(self) -> None:
        if not self.ctx.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                 "step": self.step, "best_loss": self.best_loss, "history": self.history,
                 "trained_seconds": self.elapsed_seconds()}
        if hasattr(self.task, "state_dict"):
            state["task"] = self.task.state_dict()
        tmp = self.out_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.out_dir / "last.pt")

    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.ctx.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.best_loss, self.history = float(state["best_loss"]), list(state["history"])
        self.trained_seconds = float(state.get("trained_seconds", 0.0))
        if "task" in state and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(state["task"])

    def _write_info(self, extra: dict[str, Any] | None = None) -> None:
        if not self.ctx.is_main:
            return
        info = {"model": self.model.model_name, "model_config": dataclasses.asdict(
            self.model.config), "train_config": dataclasses.asdict(self.config),
            "git_commit": git_commit(), "world_size": self.ctx.world_size,
            "num_parameters": self.model.num_parameters(), "best_valid_loss": self.best_loss,
            "history": self.history, **(extra or {})}
        tmp = self.out_dir / "train_info.json.tmp"
        tmp.write_text(json.dumps(info, indent=2, default=str))
        tmp.replace(self.out_dir / "train_info.json")

    # --- loops -------------------------------------------------------------------------------
    def _average(self, rows: Iterable[dict[str, float]]) -> dict[str, float]:
        rows = list(rows)
        keys = {k for r in rows for k in r}
        local = {k: sum(r.get(k, 0.0) for r in rows) / max(1, len(rows)) for k in sorted(keys)}
        return {k: self.ctx.all_reduce_mean(v) for k, v in local.items()}

    def train_epoch(self) -> dict[str, float]:
        from tqdm import tqdm

        self.wrapped.train()
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(self.epoch)
        rows = []
        bar = tqdm(self.train_loader, total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}",
                   disable=not (self.config.progress and self.ctx.is_main), leave=False)
        for i, batch in enumerate(bar):
            if i >= self.steps_per_epoch:
                break
            loss, logs = self.task.training_step(self.wrapped, _to_device(batch, self.ctx.device))
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite training loss at step {self.step}")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            self.step += 1
            rows.append({"loss": float(loss.detach()), **logs})
            bar.set_postfix(loss=f"{rows[-1]['loss']:.4f}")
        return self._average(rows)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        if self.valid_loader is None:
            return {}
        self.wrapped.eval()
        rows = [self.task.validation_step(self.model, _to_device(b, self.ctx.device))
                for b in self.valid_loader]
        return self._average(rows)

    def fit(self) -> list[dict[str, float]]:
        """Train until ``config.epochs`` (or ``config.time_budget_s``); returns the per-epoch
        history."""
        self._fit_start = time.perf_counter()
        while self.epoch < self.config.epochs and not (self.epoch > 0 and self._time_is_up()):
            t0 = time.perf_counter()
            train = self.train_epoch()
            valid = self.validate()
            self.epoch += 1
            row = {"epoch": self.epoch, "seconds": time.perf_counter() - t0,
                   **{f"train_{k}": v for k, v in train.items()},
                   **{f"valid_{k}": v for k, v in valid.items()}}
            self.history.append(row)
            score = valid.get("loss", train.get("loss", math.inf))
            if self.ctx.is_main:
                if score < self.best_loss:
                    self.best_loss = score
                    self.model.save_pretrained(self.out_dir / "best.safetensors",
                                               extra={"epoch": self.epoch, "valid": valid})
                self.model.save_pretrained(self.out_dir / "last.safetensors")
                # One JSON line per epoch even without progress bars: background runs' logs
                # show where they are.
                print(json.dumps({k: round(v, 5) for k, v in row.items()}), flush=True)
            self._save_state()
            self._write_info()
            self.ctx.barrier()
        return self.history
