"""Shard plans: which inputs go in which shard, Parquet shard files and done markers.

A job (tag these files, embed those files) is cut into shards of ``shard_size`` inputs. The
plan is written once to ``plan.json`` in the job's work folder, keyed by a hash of everything
that determines the output (inputs with their size and mtime, model, parameters). Each finished
shard is a Parquet file ``shard-00042.parquet`` written atomically (temp file + rename) and then
a done marker ``shard-00042.done`` (JSON: rows, bytes, sha256 of the Parquet file). A rerun of
the same job finds the same key, trusts only shards whose marker matches their file, and computes
the rest; a job with a different key starts over in a fresh plan. Nothing here imports Ray.

Layout of a work folder::

    plan.json            {"version", "kind", "key", "shard_size", "shards": [[input, ...], ...]}
    shard-00000.parquet  one row per input of shard 0 (columns depend on the job kind)
    shard-00000.done     {"rows", "bytes", "sha256"}
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audiofcn.io.audio import atomic_output

PLAN_VERSION = 1


class ShardError(ValueError):
    """A shard or plan file is unreadable or does not belong to this job."""


def job_key(kind: str, inputs: Sequence[str], shard_size: int, meta: dict[str, Any]) -> str:
    blob = json.dumps({"kind": kind, "inputs": list(inputs), "shard_size": shard_size,
                       "meta": meta}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """``path|size|mtime_ns``: a changed input file changes the job key."""
    st = os.stat(path)
    return f"{path}|{st.st_size}|{st.st_mtime_ns}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table_to_parquet(table: Any) -> bytes:
    """A pyarrow table as Parquet bytes (what a worker sends back to the driver)."""
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


class ShardPlan:
    """A job's shards in ``root``; make one with :meth:`create_or_resume`."""

    PLAN = "plan.json"

    def __init__(self, root: Path, kind: str, key: str, shard_size: int,
                 shards: list[list[str]]) -> None:
        self.root = root
        self.kind = kind
        self.key = key
        self.shard_size = shard_size
        self.shards = shards
        self.resumed = 0  # shards found done when the plan was opened

    @classmethod
    def create_or_resume(cls, root: str | os.PathLike[str], kind: str, inputs: Sequence[str],
                         shard_size: int, meta: dict[str, Any]) -> ShardPlan:
        """Resume the plan in ``root`` when it is for the same job, else start a new one there
        (removing the old plan's shard files, and only those)."""
        if shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        root = Path(root)
        key = job_key(kind, inputs, shard_size, meta)
        old = root / cls.PLAN
        if old.exists():
            try:
                plan = json.loads(old.read_text())
            except (OSError, json.JSONDecodeError):
                plan = {}
            if plan.get("version") == PLAN_VERSION and plan.get("key") == key:
                out = cls(root, kind, key, shard_size, plan["shards"])
                out.resumed = len(out.shards) - len(out.pending())
                return out
            cls._remove_files(root)
        shards = [list(inputs[i:i + shard_size]) for i in range(0, len(inputs), shard_size)]
        root.mkdir(parents=True, exist_ok=True)
        with atomic_output(root / cls.PLAN) as tmp:
            tmp.write_text(json.dumps({"version": PLAN_VERSION, "kind": kind, "key": key,
                                       "shard_size": shard_size, "shards": shards}))
        return cls(root, kind, key, shard_size, shards)

    @staticmethod
    def _remove_files(root: Path) -> None:
        for p in root.iterdir():
            if p.name == ShardPlan.PLAN or (p.name.startswith("shard-") and
                                             p.suffix in (".parquet", ".done")):
                p.unlink()

    def shard_path(self, i: int) -> Path:
        return self.root / f"shard-{i:05d}.parquet"

    def done_path(self, i: int) -> Path:
        return self.root / f"shard-{i:05d}.done"

    def is_done(self, i: int) -> bool:
        """A shard counts as done only when its marker matches its Parquet file."""
        try:
            mark = json.loads(self.done_path(i).read_text())
            return (self.shard_path(i).stat().st_size == mark["bytes"]
                    and sha256_file(self.shard_path(i)) == mark["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def pending(self) -> list[int]:
        return [i for i in range(len(self.shards)) if not self.is_done(i)]

    def write_shard(self, i: int, payload: bytes) -> None:
        """Store shard ``i`` (Parquet bytes): file first, then its done marker."""
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(io.BytesIO(payload)).metadata.num_rows
        if rows != len(self.shards[i]):
            raise ShardError(f"shard {i}: {rows} rows for {len(self.shards[i])} inputs")
        with atomic_output(self.shard_path(i)) as tmp:
            with open(tmp, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        mark = {"rows": rows, "bytes": len(payload),
                "sha256": hashlib.sha256(payload).hexdigest()}
        with atomic_output(self.done_path(i)) as tmp:
            tmp.write_text(json.dumps(mark))

    def read_all(self) -> Any:
        """All shards as one pyarrow table, in plan order (raises if a shard is missing)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        missing = self.pending()
        if missing:
            raise ShardError(f"{self.root}: shards {missing[:5]} not finished")
        tables = [pq.read_table(self.shard_path(i)) for i in range(len(self.shards))]
        return pa.concat_tables(tables) if tables else None

    def remove(self) -> None:
        """Delete the work folder after the merged output has been written."""
        shutil.rmtree(self.root, ignore_errors=True)
