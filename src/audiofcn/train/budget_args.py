"""Command-line overrides of a training budget, shared by the recipes' train scripts."""

from __future__ import annotations

import argparse
from typing import Any


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """``--epochs N`` and ``--time-budget SECONDS`` (see ``TrainConfig.time_budget_s``)."""
    parser.add_argument("--epochs", type=int, help="override the config's train.epochs")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="override the config's train.time_budget_s (wall-clock budget)")


def apply_budget_arguments(train: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """``train`` (a config's ``"train"`` section) with the given overrides applied."""
    out = dict(train)
    if args.epochs is not None:
        out["epochs"] = args.epochs
    if args.time_budget is not None:
        out["time_budget_s"] = args.time_budget
    return out
