"""Acoustic echo cancellation: linear adaptive filter, hybrid canceller, baselines, simulation,
metrics and the training task.

The network itself lives in :mod:`audiofcn.models.echo` (models layer); the command line in
:mod:`audiofcn.cli.aec`."""

from audiofcn.aec.hybrid import HybridCanceller, WithLinearStage, linear_inputs
from audiofcn.aec.linear import KalmanConfig, KalmanEchoFilter, estimate_delay, kalman_cancel
from audiofcn.aec.task import EchoCancellerTask

__all__ = ["EchoCancellerTask", "HybridCanceller", "KalmanConfig", "KalmanEchoFilter",
           "WithLinearStage", "estimate_delay", "kalman_cancel", "linear_inputs"]
