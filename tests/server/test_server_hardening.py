"""Server hardening: the upload limit is enforced while the body arrives (Content-Length first,
then a byte count), uploads in parallel are bounded, out-of-range numbers are 4xx, every error
body has one schema, and `audiofcn serve` refuses impossible ports and limits."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from audiofcn.cli.main import build_parser
from audiofcn.index import Catalog
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet
from audiofcn.server.app import ServerConfig, create_app

SR = 16000
LIMIT = 200_000
BOUNDARY = "xyzBOUNDARYxyz"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hard")
    torch.manual_seed(0)
    cfg = EmbeddingConfig(segment_seconds=1.0, channels=(4, 8), pools=((2, 2), (2, 2)),
                          embedding_dim=16)
    EmbeddingNet(cfg).save_pretrained(root / "model.safetensors")
    (root / "music").mkdir()
    t = np.arange(2 * SR) / SR
    for i in range(2):
        sf.write(root / "music" / f"t{i}.wav", 0.3 * np.sin(2 * np.pi * 220 * (i + 1) * t),
                 SR, subtype="PCM_16")
    with Catalog.create(root / "cat", root / "model.safetensors") as cat:
        cat.add_folder(root / "music")
    return root / "cat"


@pytest.fixture(scope="module")
def app(db: Path) -> Any:
    return create_app(ServerConfig(db=db, max_upload_bytes=LIMIT, max_upload_seconds=5.0,
                                   max_parallel_uploads=1, upload_wait_seconds=0.3))


def _multipart_chunks(payload_bytes: int, chunk: int = 1 << 16) -> Iterator[bytes]:
    yield (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
           f'filename="big.wav"\r\nContent-Type: audio/wav\r\n\r\n').encode()
    for _ in range(payload_bytes // chunk):
        yield bytes(chunk)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


async def _call(app: Any, path: str, chunks: Iterator[bytes], headers: dict[str, str],
                pulled: list[int], gate: asyncio.Event | None = None) -> tuple[int, Any]:
    """Drive the ASGI app directly, counting the body bytes it pulls from the client."""

    async def receive() -> dict[str, Any]:
        if gate is not None:
            await gate.wait()
        c = next(chunks, None)
        if c is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        pulled[0] += len(c)
        return {"type": "http.request", "body": c, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    hdrs = {"content-type": f"multipart/form-data; boundary={BOUNDARY}", **headers}
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 80),
             "headers": [(k.encode(), v.encode()) for k, v in hdrs.items()]}
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def _assert_error(body: Any, code: str | None = None) -> str:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str) and "\n" not in body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]["message"]


def test_content_length_over_limit_is_refused_before_reading(app: Any) -> None:
    pulled = [0]
    status, body = asyncio.run(_call(app, "/api/search/upload", _multipart_chunks(20 << 20),
                                     {"content-length": str(20 << 20)}, pulled))
    assert status == 413 and "upload limit" in _assert_error(body, "too_large")
    assert pulled[0] == 0


def test_streamed_body_is_counted_and_reading_stops_past_the_limit(app: Any) -> None:
    pulled = [0]  # no Content-Length (chunked transfer): the count is what protects the disk
    status, body = asyncio.run(_call(app, "/api/search/upload", _multipart_chunks(20 << 20),
                                     {}, pulled))
    assert status == 413 and "upload limit" in _assert_error(body, "too_large")
    assert pulled[0] < LIMIT + (256 << 10), pulled[0]


def test_parallel_uploads_are_bounded(app: Any) -> None:
    """With max_parallel_uploads=1, a second upload waits (not spooling anything) and then
    gets 503 while the first is still arriving: disk use is bounded by parallel x limit."""

    async def both() -> tuple[tuple[int, Any], list[int]]:
        gate = asyncio.Event()
        first = asyncio.create_task(_call(app, "/api/search/upload", _multipart_chunks(1000),
                                          {}, [0], gate))
        await asyncio.sleep(0.05)
        pulled = [0]
        second = await _call(app, "/api/search/upload", _multipart_chunks(1000), {}, pulled)
        gate.set()
        await first
        return second, pulled

    (status, body), pulled = asyncio.run(both())
    assert status == 503 and "busy" in _assert_error(body, "busy") and pulled[0] == 0


@pytest.mark.parametrize(("method", "url", "payload", "status"), [
    ("post", "/api/search/track", '{"track_id": 1, "end": 1e400}', 422),
    ("post", "/api/search/track", '{"track_id": 1, "start": NaN}', 422),
    ("post", "/api/search/track", '{"track_id": 1, "start": -1e400}', 422),
    ("post", "/api/search/track", '{"track_id": 10000000000000000000000}', 422),
    ("post", "/api/search/track", '{"track_id": 1, "k": 10000000000000000000000}', 200),
    ("post", "/api/search/track", '{"track_id": 1, "start": 1e300}', 400),
    ("post", "/api/search/track", '{"track_id": 1, "end": 1e300}', 200),
    ("post", "/api/search/track", '{"track_id": "x"}', 422),
    ("post", "/api/search/track", "not json", 422),
    ("get", "/api/audio/12345678901234567890123", None, 404),
    ("get", "/api/audio/-1", None, 404),
    ("get", "/api/audio/abc", None, 404),
    ("get", "/api/tracks?limit=100000000000000000000000", None, 200),
    ("get", "/api/nothing-here", None, 404),
    ("put", "/api/search/track", "{}", 405),
])
def test_out_of_range_numbers_are_4xx_with_one_error_schema(app: Any, method: str, url: str,
                                                            payload: str | None,
                                                            status: int) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    kw = {} if payload is None else {"content": payload,
                                     "headers": {"content-type": "application/json"}}
    r = client.request(method.upper(), url, **kw)
    assert r.status_code == status, r.text
    if status >= 400:
        _assert_error(r.json())


def _wav(seconds: float) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(int(seconds * SR), np.float32), SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.mark.parametrize(("files", "data", "status"), [
    ({"file": ("a.wav", _wav(1.0), "audio/wav")}, {"k": "abc"}, 422),
    ({"file": ("a.wav", _wav(1.0), "audio/wav")}, {"k": "1e400"}, 422),
    ({"file": ("a.wav", _wav(1.0), "audio/wav")}, {"k": "\u00b2"}, 422),  # a digit to isdigit()
    ({"file": ("a.wav", _wav(1.0), "audio/wav")}, {"k": "100000000000000000000000"}, 200),
    ({"other": ("a.wav", _wav(1.0), "audio/wav")}, {}, 422),
    (None, {"k": "3"}, 415),  # a urlencoded form, not multipart
])
def test_malformed_upload_forms_are_4xx(app: Any, files: Any, data: Any, status: int) -> None:
    r = TestClient(app, raise_server_exceptions=False).post("/api/search/upload", files=files,
                                                            data=data)
    assert r.status_code == status, r.text
    if status >= 400:
        _assert_error(r.json())


def test_plain_body_instead_of_multipart_is_4xx(app: Any) -> None:
    r = TestClient(app, raise_server_exceptions=False).post(
        "/api/search/upload", content=b"RIFF", headers={"content-type": "audio/wav"})
    assert r.status_code in (400, 415, 422) and _assert_error(r.json())


@pytest.mark.parametrize("args", [["--port", "70000"], ["--port", "0"], ["--port", "x"],
                                  ["--max-upload-mb", "-1"], ["--max-upload-mb", "0"],
                                  ["--max-upload-mb", "nan"], ["--max-upload-mb", "inf"],
                                  ["--max-upload-seconds", "-5"]])
def test_serve_refuses_impossible_arguments(args: list[str],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", "--db", "c", *args])
    assert exc.value.code == 2
    assert args[0] in capsys.readouterr().err
