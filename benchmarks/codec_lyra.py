"""The Lyra v2 port: speed on one thread against the TFLite original, and memory on long files.

    python benchmarks/codec_lyra.py [--lyra-root LYRA] [--seconds 10] [--long-minutes 60]

Speed rows (6 kbps, 30 quantizers): the port offline (whole signal) and streaming through
``StreamingEncoder``/``StreamingDecoder`` with 20 ms, 200 ms and 1 s chunks; the peer is Lyra's
own three TFLite graphs run frame by frame (20 ms, XNNPACK, one thread) as Lyra's C++ runs them,
through ``ai-edge-litert`` in the same process (skipped when it or the Lyra copy is missing).
RTF = seconds of audio per second of compute, from wall-clock time and from the thread's CPU
time (less sensitive to other jobs on a shared machine); best of ``--repeats``.

Memory rows (``--long-minutes``): a synthetic mono 16 kHz file of that length is written, then
``audiofcn encode`` and ``audiofcn decode`` run on it in subprocesses (``--models``) and their
peak resident memory (``ru_maxrss``) and wall time are reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiofcn.codec import StreamingDecoder, StreamingEncoder, load_codec

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best (wall, thread CPU) seconds over ``repeats`` runs after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.thread_time()
        fn()
        wall.append(time.perf_counter() - w)
        cpu.append(time.thread_time() - c)
    return min(wall), min(cpu)


def test_audio(seconds: float) -> torch.Tensor:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    x = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / 16000) / k for k in range(1, 12))
    x = 0.1 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t)) + 0.003 * rng.standard_normal(t.size)
    return torch.from_numpy(x.astype(np.float32))


def speed_rows(seconds: float, repeats: int, lyra_root: Path | None) -> list[tuple[str, float,
                                                                                    float]]:
    model = load_codec().eval()
    x = test_audio(seconds)
    rows = []

    def offline() -> None:
        with torch.inference_mode():
            model.decode(model.encode(x[None, None], 30))

    w, c = timed(offline, repeats)
    rows.append(("port, offline (whole signal)", seconds / w, seconds / c))
    for chunk_ms in (20, 200, 1000):
        n = 16 * chunk_ms

        def stream(n: int = n) -> None:
            enc, dec = StreamingEncoder(model, 30), StreamingDecoder(model)
            for i in range(0, x.numel(), n):
                dec.push(enc.push(x[i:i + n]))

        w, c = timed(stream, repeats)
        rows.append((f"port, streaming {chunk_ms} ms chunks", seconds / w, seconds / c))
    if lyra_root is None or importlib.util.find_spec("ai_edge_litert") is None:
        print("TFLite reference skipped (needs ai-edge-litert and --lyra-root)")
        return rows
    spec = importlib.util.spec_from_file_location("convert_lyra",
                                                  ROOT / "recipes" / "codec" / "convert_lyra.py")
    conv = importlib.util.module_from_spec(spec)
    sys.modules["convert_lyra"] = conv
    assert spec.loader is not None
    spec.loader.exec_module(conv)
    coeffs = lyra_root / "lyra" / "model_coeffs"
    audio = x.numpy()[: x.numel() // 320 * 320]
    w, c = timed(lambda: conv.tflite_reference(coeffs, audio, 30), repeats)
    rows.append(("Lyra TFLite (XNNPACK), streaming 20 ms frames", seconds / w, seconds / c))
    return rows


def memory_rows(minutes: float, models: list[str]) -> list[tuple[str, float, float]]:
    rows = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "audiofcn.cli.main"]
    with tempfile.TemporaryDirectory() as td:
        src = Path(td) / "long.wav"
        block = test_audio(60.0).numpy()
        with sf.SoundFile(str(src), "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(int(round(minutes))):
                f.write(block)
        for name in models:
            afc, wav = Path(td) / f"{name}.afc", Path(td) / f"{name}.wav"
            for step, args in (("encode", [str(src), str(afc), "--kbps", "6"]),
                               ("decode", [str(afc), str(wav)])):
                t = time.perf_counter()
                proc = subprocess.Popen(cli + [step] + args + ["--model", name], env=env)
                _, status, usage = os.wait4(proc.pid, 0)
                if status:
                    raise SystemExit(f"audiofcn {step} failed")
                rss_mb = usage.ru_maxrss / 1024  # ru_maxrss is in kilobytes on Linux
                rows.append((f"{name}: audiofcn {step}, {minutes:g} min file", rss_mb,
                             time.perf_counter() - t))
                print(f"| {rows[-1][0]} | {rss_mb:.0f} | {rows[-1][2]:.0f} |", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lyra-root", type=Path,
                    default=Path(os.environ.get("LYRA_ROOT", "~/data/lyra")).expanduser())
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-minutes", type=float, default=0.0,
                    help="also measure peak memory of encode/decode on a file this long")
    ap.add_argument("--models", nargs="+", default=["lyra", "c16"])
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = args.lyra_root if (args.lyra_root / "lyra" / "model_coeffs").is_dir() else None
    if not args.skip_speed:
        print(f"\n{args.seconds:g} s of audio, 6 kbps, one thread\n")
        print("| system | RTF (wall) | RTF (thread CPU) |\n|---|---|---|")
        for name, w, c in speed_rows(args.seconds, args.repeats, root):
            print(f"| {name} | {w:.1f} | {c:.1f} |")
    if args.long_minutes:
        print("\n| run | peak RSS (MB) | wall (s) |\n|---|---|---|", flush=True)
        memory_rows(args.long_minutes, args.models)
    print(f"\nload average: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
