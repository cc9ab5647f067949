"""``audiofcn tag --engine ray``: tag files as Ray Data shards, merge the Parquet shards.

Each worker rebuilds the tagger from its serialized weights once and runs the public tagging
API (:func:`audiofcn.tagging.tag_files`) on its shard's files, so a track gets exactly the
scores the local engine gives it. A shard is a Parquet table with one row per file::

    path (str), duration (float64), error (str, "" when tagged), scores (list<float64>)

with the tagger's labels in the schema metadata. The merge reads the shards in plan order, so
the results come out in the same order as the local engine's.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audiofcn.cluster.shards import ShardPlan, file_fingerprint, table_to_parquet


def model_digest(blob: dict[str, Any]) -> str:
    """Identity of a serialized model (name, config and weights) for the job key."""
    h = hashlib.sha256(blob["model"].encode())
    h.update(json.dumps(blob["config"], sort_keys=True, default=str).encode())
    for k in sorted(blob["state"]):
        h.update(k.encode())
        h.update(blob["state"][k].numpy().tobytes())
    return h.hexdigest()


class TagWorker:
    """Runs in a Ray actor: ``process(files) -> Parquet bytes`` of one tag shard."""

    def __init__(self, model_blob: dict[str, Any], batch_size: int, hop: int | None) -> None:
        from audiofcn.models import load_model

        self.model = load_model(model_blob).eval()
        self.batch_size = batch_size
        self.hop = hop

    def process(self, files: list[str]) -> bytes:
        import pyarrow as pa

        from audiofcn.io import AudioError
        from audiofcn.tagging import tag_files

        labels = list(self.model.config.labels)
        paths, durs, errors, scores = [], [], [], []
        for f, res in zip(files, tag_files(self.model, [Path(f) for f in files],
                                           self.batch_size, self.hop), strict=True):
            paths.append(f)
            if isinstance(res, AudioError):
                durs.append(0.0)
                errors.append(str(res))
                scores.append([])
            else:
                durs.append(float(res.duration))
                errors.append("")
                scores.append([float(res.scores[lab]) for lab in labels])
        table = pa.table({"path": pa.array(paths, pa.string()),
                          "duration": pa.array(durs, pa.float64()),
                          "error": pa.array(errors, pa.string()),
                          "scores": pa.array(scores, pa.list_(pa.float64()))},
                         metadata={"labels": json.dumps(labels)})
        return table_to_parquet(table)


@dataclass
class ShardedTagRun:
    """What a sharded tagging run produced (results in input order)."""

    results: list[Any] = field(default_factory=list)  # audiofcn.tagging.TrackTags
    failures: list[str] = field(default_factory=list)
    shards: int = 0
    computed: int = 0  # shards computed by this run
    resumed: int = 0  # shards found finished from an earlier, interrupted run
    plan: ShardPlan | None = None


def tag_sharded(model: Any, files: list[Path], work_dir: str | os.PathLike[str],
                batch_size: int = 16, hop: int | None = None, shard_size: int = 16,
                workers: int | None = None, gpus_per_worker: float = 0.0,
                on_shard: Callable[[int, float], None] | None = None) -> ShardedTagRun:
    """Tag ``files`` with ``model`` on the connected Ray cluster (see
    :func:`audiofcn.cluster.engine.connect`), shards kept in ``work_dir`` until the caller has
    written the merged output (then ``run.plan.remove()``)."""
    from audiofcn.cluster.engine import run_plan
    from audiofcn.tagging import TrackTags

    blob = model.serialize()
    absolute = [str(Path(f).resolve()) for f in files]
    shown = {a: str(f) for a, f in zip(absolute, files, strict=True)}
    fingerprints = [file_fingerprint(a) if Path(a).exists() else a for a in absolute]
    meta = {"model": model_digest(blob), "batch_size": batch_size, "hop": hop,
            "fingerprints": fingerprints}
    plan = ShardPlan.create_or_resume(work_dir, "tags", absolute, shard_size, meta)
    run = ShardedTagRun(shards=len(plan.shards), resumed=plan.resumed, plan=plan)
    run.computed = run_plan(plan, TagWorker, {"model_blob": blob, "batch_size": batch_size,
                                              "hop": hop}, workers, gpus_per_worker, on_shard)
    table = plan.read_all()
    labels = json.loads(table.schema.metadata[b"labels"])
    for row in table.to_pylist():
        if row["error"]:
            run.failures.append(row["error"])
        else:
            run.results.append(TrackTags(shown[row["path"]], row["duration"],
                                         dict(zip(labels, row["scores"], strict=True))))
    return run


def write_parquet(path: str | os.PathLike[str], results: list[Any], labels: list[str],
                  top: int) -> None:
    """Merged tags as one Parquet file: path, duration_s, top_tags, then one column per label
    (written atomically)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from audiofcn.io.audio import atomic_output

    cols: dict[str, Any] = {
        "path": pa.array([r.path for r in results], pa.string()),
        "duration_s": pa.array([r.duration for r in results], pa.float64()),
        "top_tags": pa.array([";".join(f"{t}:{s:.3f}" for t, s in r.top(top))
                              for r in results], pa.string())}
    for lab in labels:
        cols[lab] = pa.array([r.scores[lab] for r in results], pa.float64())
    with atomic_output(path) as tmp:
        pq.write_table(pa.table(cols), tmp)
