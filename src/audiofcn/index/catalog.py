"""A persistent segment-level music catalog: SQLite (tracks, segments, tags, embeddings) plus a
FAISS index over the segment embeddings.

Layout of a catalog folder::

    catalog.sqlite   tracks, segments (track id, start, end, embedding), tags, meta
    index.afx        FAISS index (see :mod:`audiofcn.index.store`), derived from the SQLite file
    model.safetensors  the embedding net the catalog was built with (queries must use it)
    .lock            writers take an exclusive lock on it

Crash safety: SQLite is the source of truth and every change is one transaction that also bumps
``meta.generation``. The FAISS file is written afterwards (temp file + ``os.replace``) with the
generation in its header. If a process dies in between, the next open sees an older generation
(or an unreadable file) and rebuilds the index from the embeddings stored in SQLite, so a
catalog always opens and its index always matches its tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audiofcn.index.embedder import SegmentEmbedder, Segments
from audiofcn.index.guards import (
    check_folder,
    check_new_catalog_args,
    damaged_database,
    load_embedding_model,
    sqlite_errors,
)
from audiofcn.index.records import (
    AddReport,
    CatalogError,
    SegmentHit,
    TrackResult,
    find_audio_files,
    manifest_tags,
)
from audiofcn.index.store import (
    IndexFileError,
    IndexParams,
    build_index,
    choose_kind,
    configure_search,
    read_index,
    set_faiss_threads,
    write_index,
)
from audiofcn.io.audio import AudioError
from audiofcn.models.base import CheckpointError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tracks (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, duration REAL NOT NULL,
    size INTEGER NOT NULL, mtime REAL NOT NULL, added REAL NOT NULL);
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY, track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    start REAL NOT NULL, end REAL NOT NULL, embedding BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS segments_track ON segments(track_id);
CREATE TABLE IF NOT EXISTS tags (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE, tag TEXT NOT NULL,
    PRIMARY KEY (track_id, tag));
"""


class Catalog:
    """Open with :meth:`create` or :meth:`open`; use as a context manager or call :meth:`close`.

    ``threads`` sets FAISS's OpenMP threads (shared with torch; always set explicitly)."""

    DB, INDEX, MODEL, LOCK = "catalog.sqlite", "index.afx", "model.safetensors", ".lock"

    def __init__(self, root: Path, embedder: SegmentEmbedder, conn: sqlite3.Connection,
                 writable: bool, threads: int | None) -> None:
        self.root = root
        self.embedder = embedder
        self.conn = conn
        self.writable = writable
        set_faiss_threads(threads if threads is not None else 1)
        self.rebuilt_on_open = False
        self._load_or_rebuild_index()
        if not writable:  # a current <root>/ivf (audiofcn index build-ivf) serves the searches
            from audiofcn.index.ondisk import attach_ondisk

            attach_ondisk(self)

    # --- opening -------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | os.PathLike[str], model_path: str | os.PathLike[str],
               hop_seconds: float | None = None, approx_threshold: int = 100_000,
               approx_kind: str = "ivfpq", threads: int | None = None) -> Catalog:
        """Make an empty catalog in ``root`` (which must not hold one) using the embedding
        model file ``model_path`` (copied into the catalog).

        Every argument is checked before anything is written; the folder's lock is held while
        it is created (a second creator gets the same "busy" error as on an existing catalog)
        and ``catalog.sqlite`` appears complete or not at all (built under a temporary name)."""
        root = Path(root)
        check_new_catalog_args(hop_seconds, approx_threshold, approx_kind)
        check_folder(root)
        if (root / cls.DB).exists():
            raise CatalogError(f"{root}: a catalog already exists here")
        model = load_embedding_model(model_path)
        hop = model.config.segment_seconds / 2 if hop_seconds is None else float(hop_seconds)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CatalogError(f"{root}: cannot create the catalog folder ({err.strerror})"
                               ) from None
        with cls._folder_lock(root):
            if (root / cls.DB).exists():  # another process finished creating it meanwhile
                raise CatalogError(f"{root}: a catalog already exists here")
            from audiofcn.io.audio import atomic_output

            with atomic_output(root / cls.MODEL) as tmp:
                shutil.copyfile(model_path, tmp)
            meta = {"schema_version": SCHEMA_VERSION, "generation": 0, "hop_seconds": hop,
                    "approx_threshold": approx_threshold, "approx_kind": approx_kind,
                    "dim": model.config.embedding_dim, "stale": 0, "next_segment_id": 1}
            with atomic_output(root / cls.DB) as tmp:
                tmp.unlink()  # sqlite makes the file
                conn = sqlite3.connect(tmp, isolation_level=None)
                try:
                    conn.executescript(SCHEMA)
                    with conn:
                        conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                         [(k, str(v)) for k, v in meta.items()])
                finally:
                    conn.close()
        return cls.open(root, writable=True, threads=threads)

    @classmethod
    def open(cls, root: str | os.PathLike[str], writable: bool = False,
             threads: int | None = None) -> Catalog:
        from audiofcn.models import load_model

        root = Path(root)
        check_folder(root)
        if not (root / cls.DB).exists():
            raise CatalogError(f"{root}: no catalog here (create one with `audiofcn index add`)")
        conn = None
        try:
            conn = cls._connect(root)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or not str(row[0]).isdigit():
                raise sqlite3.DatabaseError("no schema version in its meta table")
            version = int(row[0])
            if version != SCHEMA_VERSION:
                raise CatalogError(f"{root}: catalog schema {version}, expected "
                                   f"{SCHEMA_VERSION}")
            model = load_model(root / cls.MODEL)
            hop = float(conn.execute("SELECT value FROM meta WHERE key='hop_seconds'")
                        .fetchone()[0])
            if not (math.isfinite(hop) and hop > 0):
                raise CatalogError(f"{root}: the catalog stores an invalid hop ({hop} s); "
                                   "move it away and run `audiofcn index add` again")
            return cls(root, SegmentEmbedder.from_model(model, hop), conn, writable, threads)
        except (sqlite3.DatabaseError, TypeError, ValueError) as err:
            if conn is not None:
                conn.close()
            if isinstance(err, CatalogError | CheckpointError):
                raise
            raise damaged_database(root / cls.DB, err) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise

    @staticmethod
    def _connect(root: Path) -> sqlite3.Connection:
        # check_same_thread=False: the web server calls from worker threads, under its lock.
        conn = sqlite3.connect(root / Catalog.DB, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")  # readers (the server) never block a writer
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.isolation_level = "DEFERRED"  # `with conn:` = one transaction
        return conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        if not self.writable:
            raise CatalogError(f"{self.root}: catalog opened read-only")
        with self._folder_lock(self.root):
            yield

    @classmethod
    @contextlib.contextmanager
    def _folder_lock(cls, root: Path) -> Iterator[None]:
        """The writers' exclusive lock on ``root/.lock`` (not waiting: busy is an error)."""
        with open(root / cls.LOCK, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CatalogError(f"{root}: another process is changing this catalog"
                                   ) from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # --- meta ----------------------------------------------------------------------------------
    def _meta(self, key: str) -> str:
        return self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]

    def _set_meta(self, key: str, value: object) -> None:
        self.conn.execute("UPDATE meta SET value=? WHERE key=?", (str(value), key))

    @property
    @sqlite_errors
    def generation(self) -> int:
        return int(self._meta("generation"))

    def _params(self, n: int) -> IndexParams:
        kind = choose_kind(n, int(self._meta("approx_threshold")), self._meta("approx_kind"))
        return IndexParams(kind=kind)

    # --- FAISS index ---------------------------------------------------------------------------
    def _load_or_rebuild_index(self) -> None:
        path = self.root / self.INDEX
        gen = self.generation
        try:
            header, index = read_index(path)
            if header.get("generation") != gen:
                raise IndexFileError(f"{path}: built for generation {header.get('generation')}"
                                     f", catalog is at {gen}")
            self.params = IndexParams(**header["params"])
            configure_search(index, self.params)
            self.index = index
        except IndexFileError as err:
            n = self.num_segments()
            if gen == 0 and n == 0 and not path.exists():
                self.params = self._params(0)
                self.index = build_index(np.zeros((0, self.dim), np.float32),
                                         np.zeros(0, np.int64), self.params)
                return
            log.warning("%s; rebuilding the index from the catalog tables", err)
            self._rebuild(save=self.writable)
            self.rebuilt_on_open = True

    @property
    def dim(self) -> int:
        return int(self._meta("dim"))

    def _all_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        rows = self.conn.execute("SELECT id, embedding FROM segments ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32)
        return ids, vecs.reshape(len(rows), self.dim)

    def _rebuild(self, save: bool) -> None:
        ids, vecs = self._all_embeddings()
        self.params = self._params(len(ids))
        self.index = build_index(vecs, ids, self.params)
        if save:
            with self.conn:
                self._set_meta("stale", 0)
            self._save_index()

    def _save_index(self) -> None:
        write_index(self.root / self.INDEX, self.index,
                    {"generation": self.generation, "params": self.params.to_dict()})

    @sqlite_errors
    def rebuild(self) -> None:
        """Rebuild the FAISS index from the stored embeddings (drops removed vectors, picks
        the index kind for the current size) and persist it."""
        with self._write_lock():
            self._rebuild(save=True)

    # --- changes -------------------------------------------------------------------------------
    @sqlite_errors
    def add_folder(self, folder: str | os.PathLike[str], batch_files: int = 16,
                   progress: bool = False, manifest: str | os.PathLike[str] | None = None
                   ) -> AddReport:
        """Add every audio file under ``folder`` (recursively). Files already in the catalog
        with the same size and mtime are skipped; changed files are re-embedded. Tags come from
        ``manifest`` (an audiofcn manifest; default ``folder/manifest.jsonl`` when present,
        paths relative to the manifest's folder). Unreadable files are reported, not fatal.
        Each batch of ``batch_files`` is committed on its own, so an interrupted run keeps the
        finished batches."""
        from tqdm import tqdm

        t0 = time.perf_counter()
        folder = Path(folder)
        files, problems = find_audio_files(folder)
        tags = manifest_tags(Path(manifest) if manifest else folder / "manifest.jsonl")
        report = AddReport(failed=problems)
        with self._write_lock():
            pending: list[tuple[Path, Segments, float, os.stat_result, bool]] = []
            for path in tqdm(files, desc="embedding", unit="file", disable=not progress):
                path = path.resolve()
                st = path.stat()
                row = self.conn.execute("SELECT size, mtime FROM tracks WHERE path=?",
                                        (str(path),)).fetchone()
                if row and row[0] == st.st_size and abs(row[1] - st.st_mtime) < 1e-6:
                    report.skipped.append(str(path))
                    continue
                try:
                    segs, dur = self.embedder.embed_file(path)
                except AudioError as err:
                    report.failed.append(str(err))
                    continue
                pending.append((path, segs, dur, st, row is not None))
                report.audio_seconds += dur
                if len(pending) >= batch_files:
                    self._commit_tracks(pending, tags, report)
                    pending = []
            if pending:
                self._commit_tracks(pending, tags, report)
            self._maybe_compact()
        report.seconds = time.perf_counter() - t0
        return report

    def _commit_tracks(self, items: Iterable[tuple[Path, Segments, float, os.stat_result,
                                                     bool]],
                       tags: dict[Path, list[str]], report: AddReport) -> None:
        new_ids: list[np.ndarray] = []
        new_vecs: list[np.ndarray] = []
        removed: list[int] = []
        with self.conn:  # one transaction: all of this batch or none of it
            next_id = int(self._meta("next_segment_id"))
            for path, segs, dur, st, exists in items:
                if exists:
                    removed += self._delete_track_rows(str(path))
                cur = self.conn.execute(
                    "INSERT INTO tracks (path, duration, size, mtime, added) VALUES (?,?,?,?,?)",
                    (str(path), dur, st.st_size, st.st_mtime, time.time()))
                tid = cur.lastrowid
                ids = np.arange(next_id, next_id + len(segs.starts), dtype=np.int64)
                next_id += len(ids)
                self.conn.executemany(
                    "INSERT INTO segments (id, track_id, start, end, embedding) "
                    "VALUES (?,?,?,?,?)",
                    [(int(i), tid, float(s), float(e), v.tobytes()) for i, s, e, v in
                     zip(ids, segs.starts, segs.ends, segs.embeddings, strict=True)])
                self.conn.executemany("INSERT OR IGNORE INTO tags VALUES (?, ?)",
                                      [(tid, t) for t in tags.get(path, [])])
                new_ids.append(ids)
                new_vecs.append(segs.embeddings)
                (report.updated if exists else report.added).append(str(path))
                report.segments += len(ids)
            self._set_meta("next_segment_id", next_id)
            self._set_meta("generation", self.generation + 1)
        # The tables are committed; now bring the index in line and persist it. A crash from
        # here on leaves an index file of an older generation: the next open rebuilds it.
        self._remove_from_index(removed)
        self.index.add_with_ids(np.concatenate(new_vecs), np.concatenate(new_ids))
        if self.params.kind == "flat" and self.index.ntotal >= int(
                self._meta("approx_threshold")):
            self._rebuild(save=False)  # grew past the threshold: switch to the approximate kind
        self._save_index()

    def _delete_track_rows(self, path: str) -> list[int]:
        row = self.conn.execute("SELECT id FROM tracks WHERE path=?", (path,)).fetchone()
        if row is None:
            return []
        ids = [r[0] for r in self.conn.execute("SELECT id FROM segments WHERE track_id=?",
                                               (row[0],))]
        self.conn.execute("DELETE FROM tracks WHERE id=?", (row[0],))  # cascades
        return ids

    def _remove_from_index(self, ids: list[int]) -> None:
        if not ids:
            return
        if self.params.kind == "flat":
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
        else:  # approximate kinds cannot remove: hide at search time, compact later
            with self.conn:
                self._set_meta("stale", int(self._meta("stale")) + len(ids))

    def _maybe_compact(self) -> None:
        if int(self._meta("stale")) > 0.2 * max(1, self.index.ntotal):
            self._rebuild(save=True)

    @sqlite_errors
    def remove_track(self, path_or_id: str | int) -> int:
        """Remove a track (by catalog id or file path) and its segments; returns the number of
        segments removed. Raises :class:`CatalogError` when it is not in the catalog."""
        with self._write_lock():
            row = self._find_track(path_or_id)
            with self.conn:
                ids = self._delete_track_rows(row[1])
                self._set_meta("generation", self.generation + 1)
            self._remove_from_index(ids)
            self._save_index()
            self._maybe_compact()
        return len(ids)

    def _find_track(self, path_or_id: str | int) -> tuple[int, str]:
        if isinstance(path_or_id, int) or str(path_or_id).isdigit():
            row = self.conn.execute("SELECT id, path FROM tracks WHERE id=?",
                                    (int(path_or_id),)).fetchone()
        else:
            row = self.conn.execute("SELECT id, path FROM tracks WHERE path=?",
                                    (str(Path(path_or_id).resolve()),)).fetchone()
        if row is None:
            raise CatalogError(f"{self.root}: no track {path_or_id!r} in the catalog")
        return int(row[0]), str(row[1])

    # --- queries -------------------------------------------------------------------------------
    @sqlite_errors
    def num_tracks(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM tracks").fetchone()[0])

    @sqlite_errors
    def num_segments(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM segments").fetchone()[0])

    @sqlite_errors
    def info(self) -> dict[str, Any]:
        dur = self.conn.execute("SELECT COALESCE(SUM(duration), 0) FROM tracks").fetchone()[0]
        return {"root": str(self.root), "tracks": self.num_tracks(),
                "segments": self.num_segments(), "hours": round(dur / 3600, 4),
                "index_kind": self.params.kind, "index_vectors": int(self.index.ntotal),
                "stale_vectors": int(self._meta("stale")), "dim": self.dim,
                "segment_seconds": self.embedder.segment_seconds,
                "hop_seconds": self.embedder.hop_seconds,
                "sample_rate": self.embedder.sample_rate, "generation": self.generation,
                "tags": int(self.conn.execute("SELECT COUNT(DISTINCT tag) FROM tags")
                            .fetchone()[0])}

    @sqlite_errors
    def tracks(self, limit: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, path, duration FROM tracks ORDER BY id"
        rows = self.conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        tags = self._tags([r[0] for r in rows])
        return [{"track_id": r[0], "path": r[1], "name": Path(r[1]).name, "duration": r[2],
                 "tags": tags.get(r[0], [])} for r in rows]

    @sqlite_errors
    def track(self, track_id: int) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT id, path, duration FROM tracks WHERE id=?",
                                (int(track_id),)).fetchone()
        if row is None:
            return None
        return {"track_id": row[0], "path": row[1], "name": Path(row[1]).name,
                "duration": row[2], "tags": self._tags([row[0]]).get(row[0], [])}

    def _tags(self, track_ids: list[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for i in range(0, len(track_ids), 500):
            chunk = track_ids[i:i + 500]
            q = ",".join("?" * len(chunk))
            for tid, tag in self.conn.execute(
                    f"SELECT track_id, tag FROM tags WHERE track_id IN ({q}) ORDER BY tag",
                    chunk):
                out.setdefault(tid, []).append(tag)
        return out

    @sqlite_errors
    def search_embeddings(self, queries: np.ndarray, k: int = 10, per_track: int = 3,
                          exclude_track: int | None = None) -> list[TrackResult]:
        """Rank tracks for ``queries (q, dim)`` (the segments of one query clip): a catalog
        segment scores its best similarity to any query segment, a track its best segment.
        Returns up to ``k`` tracks, each with its ``per_track`` best segments."""
        n = int(self.index.ntotal)
        if n == 0 or k <= 0:
            return []
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        fetch = min(n, max(64, 8 * k * per_track) + int(self._meta("stale")))
        scores, ids = self.index.search(queries, fetch)
        best: dict[int, float] = {}
        for s_row, i_row in zip(scores, ids, strict=True):
            for s, i in zip(s_row, i_row, strict=True):
                if i >= 0 and s > best.get(int(i), -np.inf):
                    best[int(i)] = float(s)
        if not best:
            return []
        seg_rows = {}
        keys = list(best)
        for j in range(0, len(keys), 500):  # removed-but-not-compacted ids simply don't match
            chunk = keys[j:j + 500]
            q = ",".join("?" * len(chunk))
            for sid, tid, st, en in self.conn.execute(
                    f"SELECT id, track_id, start, end FROM segments WHERE id IN ({q})", chunk):
                seg_rows[sid] = (tid, st, en)
        per: dict[int, list[SegmentHit]] = {}
        for sid, score in sorted(best.items(), key=lambda kv: -kv[1]):
            if sid not in seg_rows or seg_rows[sid][0] == exclude_track:
                continue
            tid, st, en = seg_rows[sid]
            per.setdefault(tid, []).append(SegmentHit(sid, st, en, score))
        ranked = sorted(per.items(), key=lambda kv: -kv[1][0].score)[:k]
        tags = self._tags([t for t, _ in ranked])
        results = []
        for tid, hits in ranked:
            path, dur = self.conn.execute("SELECT path, duration FROM tracks WHERE id=?",
                                          (tid,)).fetchone()
            results.append(TrackResult(tid, path, hits[0].score, dur, tags.get(tid, []),
                                       hits[:per_track]))
        return results

    @sqlite_errors
    def search_file(self, path: str | os.PathLike[str], k: int = 10, start: float | None = None,
                    end: float | None = None, per_track: int = 3) -> list[TrackResult]:
        """Query with a file (or its ``[start, end)`` seconds)."""
        segs, _ = self.embedder.embed_file(path, start, end)
        return self.search_embeddings(segs.embeddings, k, per_track)

    @sqlite_errors
    def search_audio(self, audio: Any, sample_rate: int, k: int = 10,
                     per_track: int = 3) -> list[TrackResult]:
        """Query with in-memory audio ``(time,)`` or ``(channels, time)``."""
        import torch

        from audiofcn.io.audio import resample

        x = torch.as_tensor(audio, dtype=torch.float32)
        x = x.reshape(-1) if x.dim() == 1 else x.reshape(x.shape[0], -1).mean(0)
        x = resample(x[None], sample_rate, self.embedder.sample_rate)[0]
        return self.search_embeddings(self.embedder.embed_audio(x).embeddings, k, per_track)
