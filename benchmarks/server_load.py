"""Load test of the similarity web server (``audiofcn serve``) on loopback.

Starts the server as its own process on 127.0.0.1 (never another interface), then ``--clients``
concurrent clients (threads, one keep-alive connection each) send ``--requests`` requests in
all, a mix of uploads (``POST /api/search/upload`` with a WAV clip) and track searches
(``POST /api/search/track`` with a random time range), and the run stops by itself: the request
count is bounded, every request has a timeout and the whole run a deadline, after which the
server is stopped. Prints a markdown table: requests/s, p50/p95/max latency, errors (any
non-200 answer or failed request), and the server's resident memory (VmRSS from /proc) after
the warm-up and at the end, sampled every ``--rss-every`` requests.

    python benchmarks/server_load.py                        # 2000 requests, 16 clients
    python benchmarks/server_load.py --requests 200 --json runs/load.json
    python benchmarks/server_load.py --db my_catalog        # an existing catalog

Without ``--db`` it builds a throwaway catalog in a temporary folder from synthetic audio
(``--tracks`` tracks of ``--track-seconds`` s: harmonic tones with noise) using the shipped
embedding model, so the run needs nothing but this repository. Targets (issue 21): 0 errors,
p95 under 1 s, server memory flat over 2,000 requests.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"  # loopback only, by design
SR = 16000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def synth(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 80.0 * 2 ** (rng.integers(0, 36) / 12)
    x = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in (1, 2, 3, 4))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.2, 3) * t))
    x = x + 0.05 * rng.standard_normal(t.size)
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def build_catalog(folder: Path, tracks: int, seconds: float) -> Path:
    sys.path.insert(0, str(ROOT / "src"))
    from audiofcn.index import Catalog

    music = folder / "music"
    music.mkdir()
    for i in range(tracks):
        sf.write(music / f"track{i:03d}.wav", synth(seconds, i), SR, subtype="PCM_16")
    db = folder / "catalog"
    model = ROOT / "src" / "audiofcn" / "pretrained" / "embedding_small.safetensors"
    with Catalog.create(db, model, threads=1) as cat:
        cat.add_folder(music)
    return db


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def multipart(name: str, data: bytes, k: int) -> tuple[bytes, str]:
    b = "loadtestboundary7f3a"
    body = (f'--{b}\r\nContent-Disposition: form-data; name="k"\r\n\r\n{k}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def wav_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, SR, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class Load:
    """Shared state of the client threads: the next request number, results, RSS samples."""

    def __init__(self, args: argparse.Namespace, port: int, pid: int,
                 tracks: list[dict], clips: list[bytes]) -> None:
        self.args, self.port, self.pid = args, port, pid
        self.tracks, self.clips = tracks, clips
        self.lock = threading.Lock()
        self.next = 0
        self.results: list[tuple[str, float, int | str]] = []  # kind, seconds, status/error
        self.rss: list[tuple[int, float]] = []
        self.deadline = time.monotonic() + args.max_seconds

    def take(self) -> int | None:
        with self.lock:
            if self.next >= self.args.requests or time.monotonic() > self.deadline:
                return None
            self.next += 1
            return self.next - 1

    def record(self, kind: str, seconds: float, outcome: int | str) -> None:
        with self.lock:
            self.results.append((kind, seconds, outcome))
            done = len(self.results)
        if done % self.args.rss_every == 0 or done == self.args.requests:
            with self.lock:
                self.rss.append((done, rss_mb(self.pid)))

    def client(self, cid: int) -> None:
        rng = random.Random(cid)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=self.args.timeout)
        while (i := self.take()) is not None:
            upload = rng.random() < self.args.upload_share
            if upload:
                body, ctype = multipart(f"clip{i}.wav", rng.choice(self.clips), 5)
                path = "/api/search/upload"
            else:
                t = rng.choice(self.tracks)
                start = rng.uniform(0, max(0.0, t["duration"] - self.args.clip_seconds))
                body = json.dumps({"track_id": t["track_id"], "start": round(start, 2),
                                   "end": round(start + self.args.clip_seconds, 2),
                                   "k": 5}).encode()
                ctype, path = "application/json", "/api/search/track"
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": ctype})
                resp = conn.getresponse()
                payload = resp.read()
                outcome: int | str = resp.status
                if resp.status == 200 and not json.loads(payload).get("results"):
                    outcome = "empty results"
            except (OSError, http.client.HTTPException, ValueError) as err:
                outcome = type(err).__name__
                conn.close()
                conn = http.client.HTTPConnection(HOST, self.port, timeout=self.args.timeout)
            self.record("upload" if upload else "track", time.perf_counter() - t0, outcome)
        conn.close()


def wait_until_up(port: int, proc: subprocess.Popen, seconds: float = 120.0) -> list[dict]:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/api/tracks?limit=100000")
            tracks = json.loads(conn.getresponse().read())
            conn.close()
            return tracks
        except OSError:
            time.sleep(0.3)
    raise SystemExit("server did not start in time")


def summarise(load: Load, wall: float) -> dict:
    lat = np.array([r[1] for r in load.results]) if load.results else np.zeros(1)
    errors: dict[str, int] = {}
    for _, _, outcome in load.results:
        if outcome != 200:
            errors[str(outcome)] = errors.get(str(outcome), 0) + 1
    warm = next((mb for n, mb in load.rss if n >= load.args.warmup), None)
    after = [(n, mb) for n, mb in load.rss if n >= load.args.warmup]
    slope = float(np.polyfit([n for n, _ in after], [mb for _, mb in after], 1)[0] * 1000) \
        if len(after) >= 3 else float("nan")  # MB per 1000 requests, least squares
    by_kind = {}
    for kind in ("upload", "track"):
        k_lat = np.array([r[1] for r in load.results if r[0] == kind])
        if k_lat.size:
            by_kind[kind] = {"n": int(k_lat.size), "p50_ms": 1000 * float(np.median(k_lat)),
                             "p95_ms": 1000 * float(np.percentile(k_lat, 95))}
    return {"requests": len(load.results), "clients": load.args.clients,
            "warmup": load.args.warmup,
            "wall_s": wall, "requests_per_s": len(load.results) / wall,
            "p50_ms": 1000 * float(np.median(lat)), "p95_ms": 1000 * float(np.percentile(lat, 95)),
            "max_ms": 1000 * float(lat.max()), "errors": sum(errors.values()),
            "error_kinds": errors, "by_kind": by_kind,
            "rss_mb_after_warmup": warm, "rss_mb_end": load.rss[-1][1] if load.rss else None,
            "rss_mb_max": max(mb for _, mb in load.rss) if load.rss else None,
            "rss_mb_per_1000_requests": slope,
            "rss_samples": load.rss, "load_average_start": load.args.loadavg_start,
            "load_average_end": os.getloadavg(), "cpus": os.cpu_count()}


def table(s: dict) -> str:
    growth = (s["rss_mb_end"] - s["rss_mb_after_warmup"]) if s["rss_mb_after_warmup"] else \
        float("nan")
    rows = [
        ("requests (uploads / track searches)",
         f"{s['requests']} ({s['by_kind'].get('upload', {}).get('n', 0)} / "
         f"{s['by_kind'].get('track', {}).get('n', 0)})"),
        ("concurrent clients", str(s["clients"])),
        ("requests/s", f"{s['requests_per_s']:.1f}"),
        ("latency p50 / p95 / max", f"{s['p50_ms']:.0f} / {s['p95_ms']:.0f} / "
                                    f"{s['max_ms']:.0f} ms")]
    for kind, v in s["by_kind"].items():
        rows.append((f"  {kind} p50 / p95", f"{v['p50_ms']:.0f} / {v['p95_ms']:.0f} ms"))
    rows += [
        ("errors", f"{s['errors']}" + (f" {s['error_kinds']}" if s["errors"] else "")),
        (f"server RSS after {s['warmup']} requests -> end (max)",
         f"{s['rss_mb_after_warmup']:.0f} -> {s['rss_mb_end']:.0f} MB ({growth:+.1f} MB; "
         f"max {s['rss_mb_max']:.0f} MB)"),
        ("server RSS trend after warm-up (least squares)",
         f"{s['rss_mb_per_1000_requests']:+.1f} MB per 1000 requests"),
        ("machine load average (1 min) before / after",
         f"{s['load_average_start'][0]:.2f} / {s['load_average_end'][0]:.2f} "
         f"on {s['cpus']} CPUs")]
    return "| measure | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", type=Path, default=None, help="catalog (default: a synthetic one)")
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--upload-share", type=float, default=0.5)
    ap.add_argument("--clip-seconds", type=float, default=4.0, help="query length")
    ap.add_argument("--tracks", type=int, default=40)
    ap.add_argument("--track-seconds", type=float, default=30.0)
    ap.add_argument("--warmup", type=int, default=200, help="requests before the RSS baseline")
    ap.add_argument("--rss-every", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    ap.add_argument("--max-seconds", type=float, default=1800.0, help="whole run")
    ap.add_argument("--threads", type=int, default=1, help="server torch/FAISS threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args()
    if not (1 <= args.requests <= 100_000 and 1 <= args.clients <= 256):
        ap.error("--requests must be 1-100000 and --clients 1-256")
    args.loadavg_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="audiofcn_load_") as tmp:
        db = args.db or build_catalog(Path(tmp), args.tracks, args.track_seconds)
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "audiofcn.cli.main", "serve", "--db", str(db), "--host",
             HOST, "--port", str(port), "--threads", str(args.threads)],
            env=env, stdout=subprocess.DEVNULL)
        try:
            tracks = wait_until_up(port, proc)
            rng = np.random.default_rng(7)
            clips = [wav_bytes(synth(args.track_seconds, int(rng.integers(0, args.tracks)))
                               [:int(args.clip_seconds * SR)]) for _ in range(8)]
            load = Load(args, port, proc.pid, tracks, clips)
            load.rss.append((0, rss_mb(proc.pid)))
            t0 = time.perf_counter()
            workers = [threading.Thread(target=load.client, args=(c,), daemon=True)
                       for c in range(args.clients)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            wall = time.perf_counter() - t0
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    s = summarise(load, wall)
    print(table(s))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(s, indent=2))


if __name__ == "__main__":
    main()
