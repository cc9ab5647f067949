"""FastAPI app: upload a clip or pick a catalog track + time range, get similar segments.

Endpoints (JSON unless noted)::

    GET  /                      the page (static/index.html)
    GET  /api/info              catalog summary and upload limits
    GET  /api/tracks            catalog tracks (id, name, duration, tags)
    POST /api/search/upload     multipart: file, k -> results
    POST /api/search/track      {"track_id", "start", "end", "k"} -> results (others only)
    GET  /api/audio/{track_id}  the catalog file of that track (audio; range requests)

Only files registered in the catalog are ever served, looked up by integer track id; no path
from a request reaches the file system. Uploads are capped in bytes (checked while reading,
not trusting Content-Length), limited to audio types that decode, and in duration.
"""

from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from audiofcn.index import Catalog, TrackResult

STATIC = Path(__file__).resolve().parent / "static"
UPLOAD_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff"}


@dataclass
class ServerConfig:
    db: Path
    max_upload_bytes: int = 20 * 2**20
    max_upload_seconds: float = 60.0
    max_k: int = 50
    threads: int = 1


class TrackQuery(BaseModel):
    track_id: int
    start: float = Field(0.0, ge=0.0)
    end: float | None = Field(None, gt=0.0)
    k: int = Field(10, ge=1)


class CatalogHandle:
    """One open catalog shared by the worker threads (SQLite + FAISS calls under a lock);
    reopened when another process (``audiofcn index add``) has changed it."""

    def __init__(self, db: Path, threads: int) -> None:
        self.db, self.threads = db, threads
        self.lock = threading.Lock()
        self.cat = Catalog.open(db, threads=threads)
        self.loaded_generation = self.cat.generation

    def current(self) -> Catalog:
        """The catalog, reopened first if its generation moved on (call under ``lock``)."""
        if self.cat.generation != self.loaded_generation:  # reads SQLite: cheap
            self.cat.close()
            self.cat = Catalog.open(self.db, threads=self.threads)
            self.loaded_generation = self.cat.generation
        return self.cat


def _results(results: list[TrackResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        d = r.to_dict()
        d.pop("path")  # the page gets names and ids, never server paths
        d["name"] = Path(r.path).name
        d["audio_url"] = f"/api/audio/{r.track_id}"
        out.append(d)
    return out


def create_app(config: ServerConfig) -> FastAPI:
    import torch

    torch.set_num_threads(config.threads)
    handle = CatalogHandle(Path(config.db), config.threads)
    app = FastAPI(title="audiofcn similarity search", docs_url=None, redoc_url=None)
    app.state.config = config
    app.state.handle = handle

    def catalog() -> Catalog:
        return handle.current()

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        with handle.lock:
            i = catalog().info()
        i.pop("root", None)
        return {**i, "max_upload_mb": round(config.max_upload_bytes / 2**20, 2),
                "max_upload_seconds": config.max_upload_seconds,
                "upload_types": sorted(UPLOAD_SUFFIXES)}

    @app.get("/api/tracks")
    def tracks(limit: int = 1000) -> list[dict[str, Any]]:
        with handle.lock:
            rows = catalog().tracks(limit=max(1, min(limit, 100_000)))
        return [{k: v for k, v in r.items() if k != "path"} for r in rows]

    @app.get("/api/audio/{track_id}")
    def audio(track_id: int) -> FileResponse:
        with handle.lock:
            t = catalog().track(track_id)
        if t is None:
            raise HTTPException(404, f"no track {track_id} in the catalog")
        path = Path(t["path"])
        if not path.is_file():
            raise HTTPException(410, f"the file of track {track_id} is no longer on disk")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                             "application/octet-stream"))

    @app.post("/api/search/upload")
    async def search_upload(file: UploadFile = File(...), k: int = Form(10)) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        from audiofcn.io.audio import AudioError, audio_info, load_audio

        name = Path(file.filename or "upload").name
        suffix = Path(name).suffix.lower()
        if suffix not in UPLOAD_SUFFIXES:
            raise HTTPException(415, f"unsupported file type {suffix or '(none)'!r} for "
                                     f"{name!r}: upload one of "
                                     f"{', '.join(sorted(UPLOAD_SUFFIXES))}")
        k = max(1, min(int(k), config.max_k))
        fd, tmp = tempfile.mkstemp(prefix="audiofcn_upload_", suffix=suffix)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > config.max_upload_bytes:
                        raise HTTPException(413, f"{name!r} is larger than the upload limit "
                                                 f"of {config.max_upload_bytes / 2**20:.1f} MB")
                    f.write(chunk)
            if size == 0:
                raise HTTPException(400, f"{name!r} is empty")

            def run() -> dict[str, Any]:
                try:
                    dur = audio_info(tmp).duration
                    if dur > config.max_upload_seconds:
                        raise HTTPException(413, f"{name!r} is {dur:.1f} s long; the limit is "
                                                 f"{config.max_upload_seconds:.0f} s (cut a "
                                                 "shorter clip)")
                    wav, sr = load_audio(tmp)
                except AudioError as err:
                    problem = str(err).split(": ", 1)[-1]
                    raise HTTPException(422, f"{name!r} is not readable audio ({problem})"
                                        ) from None
                with handle.lock:
                    res = catalog().search_audio(wav[0], sr, k=k)
                return {"query": {"name": name, "duration": round(wav.shape[-1] / sr, 3)},
                        "results": _results(res)}

            return await run_in_threadpool(run)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @app.post("/api/search/track")
    def search_track(q: TrackQuery) -> dict[str, Any]:
        from audiofcn.io.audio import AudioError

        k = min(q.k, config.max_k)
        if q.end is not None and q.end <= q.start:
            raise HTTPException(400, f"end ({q.end}) must be after start ({q.start})")
        with handle.lock:
            cat = catalog()
            t = cat.track(q.track_id)
            if t is None:
                raise HTTPException(404, f"no track {q.track_id} in the catalog")
            if q.start >= t["duration"]:
                raise HTTPException(400, f"start {q.start} s is past the end of the track "
                                         f"({t['duration']:.1f} s)")
            try:
                segs, dur = cat.embedder.embed_file(t["path"], q.start, q.end)
            except AudioError as err:
                raise HTTPException(422, str(err).split(": ", 1)[-1]) from None
            res = cat.search_embeddings(segs.embeddings, k, exclude_track=q.track_id)
        return {"query": {"track_id": q.track_id, "name": t["name"], "start": q.start,
                          "end": q.start + dur}, "results": _results(res)}

    @app.exception_handler(HTTPException)
    async def http_error(_: Any, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
