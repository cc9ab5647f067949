"""Acoustic echo cancellation: adaptive filters, baselines, simulation, metrics, training task.

The network itself lives in :mod:`audiofcn.models.echo` (models layer)."""
