"""Web API: searches, serving only catalog files, upload limits, path traversal; and one
end-to-end browser test (Playwright driving Debian's headless Chromium)."""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fastapi.testclient import TestClient

from audiofcn.index import Catalog
from audiofcn.models.embedding import EmbeddingConfig, EmbeddingNet
from audiofcn.server.app import ServerConfig, create_app

SR = 16000
CHROMIUM = Path("/usr/bin/chromium")


def make_music(folder: Path, n: int = 5, seconds: float = 3.0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * SR)) / SR
    paths = []
    for i in range(n):
        f0 = 110.0 * 2 ** (i * 5 / 12)
        x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in (1, 2, 3))
        x = x * (0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + i) * t)) + \
            0.02 * rng.standard_normal(t.size)
        p = folder / f"track{i}.wav"
        sf.write(p, (0.3 * x / np.abs(x).max()).astype(np.float32), SR, subtype="PCM_16")
        paths.append(p)
    (folder / "manifest.jsonl").write_text(
        '{"path": "track1.wav", "duration": 3.0, "sample_rate": 16000, '
        '"tags": ["organ", "tempo_slow"]}\n')
    return paths


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("server")
    torch.manual_seed(0)
    cfg = EmbeddingConfig(segment_seconds=1.0, channels=(4, 8), pools=((2, 2), (2, 2)),
                          embedding_dim=16)
    EmbeddingNet(cfg).save_pretrained(root / "model.safetensors")
    files = make_music(root / "music")
    with Catalog.create(root / "cat", root / "model.safetensors") as cat:
        cat.add_folder(root / "music")
    (root / "secret.txt").write_text("not for the web")
    return root / "cat", files


@pytest.fixture(scope="module")
def client(catalog: tuple[Path, list[Path]]) -> TestClient:
    app = create_app(ServerConfig(db=catalog[0], max_upload_bytes=200_000,
                                  max_upload_seconds=5.0))
    return TestClient(app)


def wav_bytes(seconds: float, f0: float = 220.0) -> bytes:
    t = np.arange(int(seconds * SR)) / SR
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), SR,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_page_info_and_tracks(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "upload-form" in page.text
    assert client.get("/static/app.js").status_code == 200
    info = client.get("/api/info").json()
    assert info["tracks"] == 5 and info["max_upload_seconds"] == 5.0 and "root" not in info
    tracks = client.get("/api/tracks").json()
    assert len(tracks) == 5 and all("path" not in t for t in tracks)
    assert next(t for t in tracks if t["name"] == "track1.wav")["tags"] == ["organ",
                                                                            "tempo_slow"]


def test_search_upload_and_track(client: TestClient, catalog) -> None:
    _, files = catalog
    data = files[2].read_bytes()
    r = client.post("/api/search/upload", files={"file": ("q.wav", data, "audio/wav")},
                    data={"k": "3"})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert res[0]["name"] == "track2.wav" and len(res) == 3
    assert res[0]["audio_url"] == f"/api/audio/{res[0]['track_id']}"
    assert all("path" not in x for x in res) and res[0]["segments"][0]["end"] > 0
    tid = res[0]["track_id"]
    r = client.post("/api/search/track", json={"track_id": tid, "start": 0.5, "end": 2.0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["name"] == "track2.wav"
    assert tid not in [x["track_id"] for x in body["results"]] and len(body["results"]) == 4
    bad = client.post("/api/search/track", json={"track_id": tid, "start": 2.0, "end": 1.0})
    assert bad.status_code == 400 and "after start" in bad.json()["error"]["message"]
    assert client.post("/api/search/track", json={"track_id": 999}).status_code == 404
    past = client.post("/api/search/track", json={"track_id": tid, "start": 60})
    assert past.status_code == 400 and "past the end" in past.json()["error"]["message"]


def test_audio_is_served_only_by_catalog_id(client: TestClient, catalog) -> None:
    _, files = catalog
    tracks = {t["name"]: t["track_id"] for t in client.get("/api/tracks").json()}
    r = client.get(f"/api/audio/{tracks['track0.wav']}")
    assert r.status_code == 200 and r.content == files[0].read_bytes()
    assert r.headers["content-type"].startswith("audio/")
    part = client.get(f"/api/audio/{tracks['track0.wav']}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100  # seeking works
    assert client.get("/api/audio/999").status_code == 404
    for url in ["/api/audio/..%2F..%2Fsecret.txt", "/api/audio/%2Fetc%2Fpasswd",
                "/static/../secret.txt", "/static/..%2F..%2Fapp.py",
                "/static/%2e%2e/%2e%2e/index/catalog.py", "/api/audio/1/../../secret.txt"]:
        r = client.get(url)
        assert r.status_code in (404, 422), url
        assert b"not for the web" not in r.content and b"import" not in r.content


@pytest.mark.parametrize(("name", "payload", "status", "message"), [
    ("notes.txt", b"hello", 415, "unsupported file type '.txt'"),
    ("noext", b"hello", 415, "unsupported file type"),
    ("fake.wav", b"RIFF....WAVEjunkjunk", 422, "not readable audio"),
    ("empty.wav", b"", 400, "is empty"),
    ("long.wav", wav_bytes(6.0), 413, "limit is 5 s"),
    ("big.wav", b"\0" * 300_000, 413, "larger than the upload limit"),
])
def test_bad_uploads_are_rejected(client: TestClient, name: str, payload: bytes, status: int,
                                  message: str) -> None:
    r = client.post("/api/search/upload", files={"file": (name, payload, "audio/wav")})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]["message"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_browser_upload_results_and_playback(catalog, tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("browser test skipped: /usr/bin/chromium is missing "
                    "(apt-get install chromium)")
    import uvicorn
    from playwright.sync_api import sync_playwright

    root, files = catalog
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ServerConfig(db=root)), host="127.0.0.1",
                                          port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.05)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=str(CHROMIUM), headless=True,
                args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync", "--autoplay-policy=no-user-gesture-required"])
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#track-select option", state="attached")
                page.set_input_files("#upload-file", str(files[3]))
                page.click("#upload-submit")
                page.wait_for_selector("#results li.result", timeout=20_000)
                assert page.inner_text("#results li.result .name") == "track3.wav"
                assert "similar tracks" in page.inner_text("#status")
                audio = page.locator("#results li.result audio").first
                start = float(audio.get_attribute("data-start"))
                assert "#t=" in audio.get_attribute("src")
                audio.evaluate("a => a.play()")
                page.wait_for_function(
                    "a => !a.paused && a.currentTime > Number(a.dataset.start) + 0.1",
                    arg=audio.element_handle(), timeout=10_000)
                assert audio.evaluate("a => a.currentTime") >= start
                # A rejected upload shows the server's message on the page.
                bad = tmp_path / "notes.txt"
                bad.write_text("hello")
                page.set_input_files("#upload-file", str(bad))
                page.click("#upload-submit")
                page.wait_for_selector("#status.error")
                assert "unsupported file type" in page.inner_text("#status")
            finally:
                browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
