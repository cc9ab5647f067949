"""Run a shard worker over a :class:`~audiofcn.cluster.shards.ShardPlan` with Ray Data.

The pending shards become a Ray dataset of ``{"shard": i, "inputs": json}`` rows, one block per
shard; :meth:`ray.data.Dataset.map_batches` runs them through a pool of actors (one per CPU, or
one per GPU with ``gpus_per_worker``), each of which loads its model once. A worker returns the
shard as Parquet bytes; the driver streams them in as they finish and writes each shard and its
done marker at once, so a run killed half-way keeps every shard it had received. Inputs (audio
files) must be readable at the same path on every node (a shared or object-store mount); the
outputs are written only by the driver.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import Any

from audiofcn.cluster.shards import ShardPlan

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """Ray is missing or the cluster cannot be reached."""


def connect(address: str | None = None, num_cpus: int | None = None) -> dict[str, float]:
    """Join the cluster at ``address`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``) or,
    without one, start a local Ray instance with ``num_cpus`` CPUs (default: all). Reuses an
    already-initialised Ray. Returns the cluster's resources."""
    try:
        import ray
    except ImportError:
        raise ClusterError("--engine ray needs Ray: pip install 'audiofcn[cluster]'") from None
    if not ray.is_initialized():
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            raise ClusterError(f"cannot start or reach Ray at {address or 'local'}: "
                               f"{str(err).splitlines()[0]}") from None
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
    return dict(ray.cluster_resources())


class _ShardActor:
    """Ray Data callable class: builds ``worker_cls(**kwargs)`` once, then maps shard rows."""

    def __init__(self, worker_cls: type, kwargs: dict[str, Any]) -> None:
        import torch

        torch.set_num_threads(1)  # one actor per CPU: no oversubscription
        self.worker = worker_cls(**kwargs)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import time

        shards, payloads, cpu = [], [], []
        for shard, inputs in zip(batch["shard"], batch["inputs"], strict=True):
            c0 = time.process_time()
            shards.append(int(shard))
            payloads.append(self.worker.process(json.loads(inputs)))
            cpu.append(time.process_time() - c0)  # this actor's CPU seconds on the shard
        return {"shard": shards, "payload": payloads, "cpu_s": cpu}


def run_plan(plan: ShardPlan, worker_cls: type, kwargs: dict[str, Any],
             workers: int | None = None, gpus_per_worker: float = 0.0,
             on_shard: Callable[[int, float], None] | None = None) -> int:
    """Compute every pending shard of ``plan`` with ``worker_cls(**kwargs).process(inputs) ->
    parquet bytes`` on the connected cluster; returns the number of shards computed now.
    ``on_shard(shard, cpu_seconds)`` is called as each shard is stored.

    ``workers`` defaults to the cluster's CPUs (or GPUs when ``gpus_per_worker`` > 0)."""
    import ray

    pending = plan.pending()
    if not pending:
        return 0
    res = ray.cluster_resources()
    if workers is None:
        workers = int(res.get("GPU", 0) / gpus_per_worker) if gpus_per_worker else \
            int(res.get("CPU", 1))
    # an actor pool larger than the cluster would wait forever for its last actors
    room = int(res.get("GPU", 0) / gpus_per_worker) if gpus_per_worker else int(res.get("CPU", 1))
    if workers > room:
        log.warning("%d workers requested, the cluster has room for %d", workers, room)
    workers = max(1, min(workers, room, len(pending)))
    rows = [{"shard": i, "inputs": json.dumps(plan.shards[i])} for i in pending]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows))
    ds = ds.map_batches(_ShardActor, fn_constructor_args=(worker_cls, kwargs), batch_size=1,
                        compute=ray.data.ActorPoolStrategy(size=workers),
                        num_cpus=0 if gpus_per_worker else 1,
                        num_gpus=gpus_per_worker or None, batch_format="default")
    done = 0
    for batch in ds.iter_batches(batch_size=1, batch_format="default", prefetch_batches=0):
        for shard, payload, cpu in zip(batch["shard"], batch["payload"], batch["cpu_s"],
                                       strict=True):
            plan.write_shard(int(shard), bytes(payload))
            done += 1
            if on_shard:
                on_shard(int(shard), float(cpu))
    return done
