"""The one trainer of audiofcn (DDP-aware under torchrun), parametrised by a task."""

from audiofcn.train.budget_args import add_budget_arguments, apply_budget_arguments
from audiofcn.train.distributed import DistributedContext, distributed_context
from audiofcn.train.trainer import Task, TrainConfig, Trainer, git_commit

__all__ = ["DistributedContext", "Task", "TrainConfig", "Trainer", "add_budget_arguments",
           "apply_budget_arguments", "distributed_context", "git_commit"]
