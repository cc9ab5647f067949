"""The one trainer of audiofcn (DDP-aware under torchrun), parametrised by a task."""

from audiofcn.train.distributed import DistributedContext, distributed_context
from audiofcn.train.trainer import Task, TrainConfig, Trainer, git_commit

__all__ = ["DistributedContext", "Task", "TrainConfig", "Trainer", "distributed_context",
           "git_commit"]
