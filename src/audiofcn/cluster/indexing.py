"""``audiofcn index add --engine ray``: embed files as Ray Data shards, merge into a catalog.

The driver scans the folder exactly as :meth:`audiofcn.index.Catalog.add_folder` does (new and
changed files; unchanged ones are skipped), shards the files to embed, and the workers cut and
embed them with the catalog's own model (:class:`~audiofcn.index.SegmentEmbedder`). A shard is
a Parquet table, one row per file::

    path (str), duration (float64), error (str), starts, ends (list<float64>),
    embeddings (binary: float32 row-major (segments, dim))

When every shard is in, the catalog takes all of them in ONE SQLite transaction (then updates
and saves its FAISS index), in scan order, so segment and track ids come out exactly as the
local engine numbers them. Until then the catalog is untouched; a killed run resumes from the
shard folder ``<catalog>/.shards/add`` and recomputes only unfinished shards.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from audiofcn.cluster.shards import ShardPlan, file_fingerprint, sha256_file, table_to_parquet
from audiofcn.index import AddReport, Catalog, Segments
from audiofcn.index.records import find_audio_files, manifest_tags


class EmbedWorker:
    """Runs in a Ray actor: ``process(files) -> Parquet bytes`` of one embedding shard."""

    def __init__(self, model_blob: dict[str, Any], hop_seconds: float) -> None:
        from audiofcn.index import SegmentEmbedder
        from audiofcn.models import load_model

        self.embedder = SegmentEmbedder.from_model(load_model(model_blob), hop_seconds)

    def process(self, files: list[str]) -> bytes:
        import pyarrow as pa

        from audiofcn.io.audio import AudioError

        cols: dict[str, list[Any]] = {k: [] for k in ("path", "duration", "error", "starts",
                                                      "ends", "embeddings")}
        for f in files:
            try:
                segs, dur = self.embedder.embed_file(f)
                row = [f, float(dur), "", segs.starts.tolist(), segs.ends.tolist(),
                       np.ascontiguousarray(segs.embeddings, np.float32).tobytes()]
            except AudioError as err:
                row = [f, 0.0, str(err), [], [], b""]
            for k, v in zip(cols, row, strict=True):
                cols[k].append(v)
        table = pa.table({"path": pa.array(cols["path"], pa.string()),
                          "duration": pa.array(cols["duration"], pa.float64()),
                          "error": pa.array(cols["error"], pa.string()),
                          "starts": pa.array(cols["starts"], pa.list_(pa.float64())),
                          "ends": pa.array(cols["ends"], pa.list_(pa.float64())),
                          "embeddings": pa.array(cols["embeddings"], pa.binary())})
        return table_to_parquet(table)


def add_folder_ray(cat: Catalog, folder: str | os.PathLike[str],
                   manifest: str | os.PathLike[str] | None = None, shard_size: int = 16,
                   workers: int | None = None, gpus_per_worker: float = 0.0,
                   on_shard: Callable[[int, float], None] | None = None) -> AddReport:
    """Like :meth:`Catalog.add_folder`, with the embedding done on the connected Ray cluster
    (see :func:`audiofcn.cluster.engine.connect`). Same files skipped, same ids, same index."""
    from audiofcn.cluster.engine import run_plan
    from audiofcn.models.base import read_checkpoint

    t0 = time.perf_counter()
    folder = Path(folder)
    files, problems = find_audio_files(folder)
    tags = manifest_tags(Path(manifest) if manifest else folder / "manifest.jsonl")
    report = AddReport(failed=problems)
    # The catalog's private write lock and commit are used on purpose: the merge must be the
    # very same transaction the local engine makes, held under the same lock for the whole run.
    with cat._write_lock():
        todo: list[tuple[Path, os.stat_result, bool]] = []
        for path in files:
            path = path.resolve()
            st = path.stat()
            row = cat.conn.execute("SELECT size, mtime FROM tracks WHERE path=?",
                                   (str(path),)).fetchone()
            if row and row[0] == st.st_size and abs(row[1] - st.st_mtime) < 1e-6:
                report.skipped.append(str(path))
            else:
                todo.append((path, st, row is not None))
        if todo:
            model_file = cat.root / Catalog.MODEL
            meta = {"model": sha256_file(model_file), "hop": cat.embedder.hop_seconds,
                    "fingerprints": [file_fingerprint(p) for p, _, _ in todo]}
            plan = ShardPlan.create_or_resume(cat.root / ".shards" / "add", "embeddings",
                                              [str(p) for p, _, _ in todo], shard_size, meta)
            run_plan(plan, EmbedWorker, {"model_blob": read_checkpoint(model_file),
                                         "hop_seconds": cat.embedder.hop_seconds},
                     workers, gpus_per_worker, on_shard)
            table = plan.read_all()
            by_path = {p: (st, exists) for p, st, exists in todo}
            pending = []
            for r in table.to_pylist():
                if r["error"]:
                    report.failed.append(r["error"])
                    continue
                emb = np.frombuffer(r["embeddings"], np.float32).reshape(len(r["starts"]),
                                                                         cat.dim)
                segs = Segments(np.asarray(r["starts"]), np.asarray(r["ends"]), emb.copy())
                st, exists = by_path[Path(r["path"])]
                pending.append((Path(r["path"]), segs, r["duration"], st, exists))
                report.audio_seconds += r["duration"]
            if pending:
                cat._commit_tracks(pending, tags, report)
            plan.remove()
            with contextlib.suppress(OSError):
                plan.root.parent.rmdir()  # .shards/, when nothing else is in it
        cat._maybe_compact()
    report.seconds = time.perf_counter() - t0
    return report
