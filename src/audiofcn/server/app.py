"""FastAPI app: upload a clip or pick a catalog track + time range, get similar segments.

Endpoints (JSON unless noted)::

    GET  /                      the page (static/index.html)
    GET  /api/info              catalog summary and upload limits
    GET  /api/tracks            catalog tracks (id, name, duration, tags)
    POST /api/search/upload     multipart: file, k -> results
    POST /api/search/track      {"track_id", "start", "end", "k"} -> results (others only)
    GET  /api/audio/{track_id}  the catalog file of that track (audio; range requests)

Only files registered in the catalog are ever served, looked up by integer track id; no path
from a request reaches the file system. Uploads are capped in bytes while they arrive: a
``Content-Length`` over the limit is refused before the body is read, and the bytes are counted
as they stream in (reading stops at the limit), so a client that lies or sends chunked data
cannot fill the disk. At most ``max_parallel_uploads`` uploads are received or processed at
once (others wait ``upload_wait_seconds``, then get 503), so upload files on disk never exceed
``2 * max_parallel_uploads * max_upload_bytes`` (the multipart spool plus the named copy).
Uploads are limited to audio types that decode, and in duration.

Every error answer has one JSON schema: ``{"error": {"code": <slug>, "message": <one line>}}``
(codes in :data:`ERROR_CODES`), including validation errors, unknown routes and 500s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from audiofcn.index import Catalog, TrackResult

STATIC = Path(__file__).resolve().parent / "static"
UPLOAD_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg",
               ".mp3": "audio/mpeg", ".aif": "audio/aiff", ".aiff": "audio/aiff"}
FORM_OVERHEAD = 64 << 10  # multipart boundaries, part headers and the small `k` field
MAX_TRACK_ID = 2**63 - 1  # SQLite's INTEGER range
ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 410: "gone",
               413: "too_large", 415: "unsupported_type", 422: "invalid_input",
               500: "internal_error", 503: "busy"}
log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    """The one error schema: ``{"error": {"code", "message"}}`` with a one-line message."""
    line = " ".join(str(message).split())
    return JSONResponse({"error": {"code": ERROR_CODES.get(status, f"http_{status}"),
                                   "message": line[:500]}}, status_code=status)


@dataclass
class ServerConfig:
    db: Path
    max_upload_bytes: int = 20 * 2**20
    max_upload_seconds: float = 60.0
    max_k: int = 50
    threads: int = 1
    max_parallel_uploads: int = 4
    upload_wait_seconds: float = 30.0


class TrackQuery(BaseModel):
    model_config = ConfigDict(allow_inf_nan=False)  # 1e400 parses as inf: refuse it (422)

    track_id: int = Field(ge=0, le=MAX_TRACK_ID)
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
    def audio(track_id: str) -> FileResponse:
        tid = int(track_id) if track_id.isascii() and track_id.isdigit() and \
            len(track_id) <= 19 else -1
        t = None
        if 0 <= tid <= MAX_TRACK_ID:
            with handle.lock:
                t = catalog().track(tid)
        if t is None:
            raise HTTPException(404, f"no track {track_id[:30]} in the catalog")
        path = Path(t["path"])
        if not path.is_file():
            raise HTTPException(410, f"the file of track {track_id} is no longer on disk")
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix.lower(),
                                                             "application/octet-stream"))

    slots: dict[str, Any] = {"loop": None, "semaphore": None}

    def upload_slots() -> asyncio.Semaphore:
        """The upload semaphore of the running event loop (FIFO: no waiter starves)."""
        loop = asyncio.get_running_loop()
        if slots["loop"] is not loop:
            slots["loop"] = loop
            slots["semaphore"] = asyncio.Semaphore(config.max_parallel_uploads)
        return slots["semaphore"]

    def too_large(what: str = "the upload") -> HTTPException:
        return HTTPException(413, f"{what} is larger than the upload limit of "
                                  f"{config.max_upload_bytes / 2**20:.1f} MB")

    async def limited_body(request: Request) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > config.max_upload_bytes + FORM_OVERHEAD:
                raise too_large()  # stop reading here: nothing more reaches the disk
            yield chunk

    @app.post("/api/search/upload")
    async def search_upload(request: Request) -> dict[str, Any]:
        """multipart/form-data with ``file`` (and optional ``k``) -> results."""
        length = request.headers.get("content-length")
        if length is not None:
            if not (length.isascii() and length.isdigit()):
                raise HTTPException(400, f"bad Content-Length header {length[:30]!r}")
            if int(length) > config.max_upload_bytes + FORM_OVERHEAD:
                raise too_large()  # refused before a byte of the body is read
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise HTTPException(415, "send the audio as multipart/form-data in a field "
                                     "named 'file'")
        slot = upload_slots()
        try:
            await asyncio.wait_for(slot.acquire(), config.upload_wait_seconds)
        except asyncio.TimeoutError:
            raise HTTPException(503, f"server busy: {config.max_parallel_uploads} uploads "
                                     "in progress; try again shortly") from None
        try:
            return await receive_and_search(request)
        finally:
            slot.release()

    async def receive_and_search(request: Request) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        parser = MultiPartParser(request.headers, limited_body(request), max_files=1,
                                 max_fields=4, max_part_size=1024)
        try:
            form = await parser.parse()
        except MultiPartException as err:
            raise HTTPException(400, f"malformed multipart upload ({err.message})") from None
        try:
            file, k_text = form.get("file"), form.get("k", "10")
            if not isinstance(file, UploadFile):
                raise HTTPException(422, "the upload needs an audio file in a form field "
                                         "named 'file'")
            k_text = k_text.strip() if isinstance(k_text, str) else ""
            if not (k_text.isascii() and k_text.isdigit() and len(k_text) <= 30):
                raise HTTPException(422, f"k must be a whole number, got {k_text[:30]!r}")
            k = max(1, min(int(k_text), config.max_k))
            name = Path(file.filename or "upload").name
            suffix = Path(name).suffix.lower()
            if suffix not in UPLOAD_SUFFIXES:
                raise HTTPException(415, f"unsupported file type {suffix or '(none)'!r} for "
                                         f"{name!r}: upload one of "
                                         f"{', '.join(sorted(UPLOAD_SUFFIXES))}")
            if (file.size or 0) > config.max_upload_bytes:
                raise too_large(repr(name))
            if not file.size:
                raise HTTPException(400, f"{name!r} is empty")
            return await run_in_threadpool(search_spooled, file, name, suffix, k)
        finally:
            await form.close()

    def search_spooled(file: UploadFile, name: str, suffix: str, k: int) -> dict[str, Any]:
        from audiofcn.io.audio import AudioError, audio_info, load_audio

        fd, tmp = tempfile.mkstemp(prefix="audiofcn_upload_", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                file.file.seek(0)
                shutil.copyfileobj(file.file, f, 1 << 20)
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
            end = None if q.end is None else min(q.end, t["duration"])
            try:
                segs, dur = cat.embedder.embed_file(t["path"], q.start, end)
            except AudioError as err:
                raise HTTPException(422, str(err).split(": ", 1)[-1]) from None
            res = cat.search_embeddings(segs.embeddings, k, exclude_track=q.track_id)
        return {"query": {"track_id": q.track_id, "name": t["name"], "start": q.start,
                          "end": q.start + dur}, "results": _results(res)}

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Any, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Any, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return error_response(422, f"{where + ': ' if where else ''}{first.get('msg')}{more}")

    @app.exception_handler(Exception)
    async def internal_error(_: Any, exc: Exception) -> JSONResponse:
        log.error("internal error", exc_info=exc)
        return error_response(500, "internal server error (see the server log)")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
