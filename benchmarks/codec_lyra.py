"""The Lyra v2 port: speed on one thread against the TFLite original, and memory on long files.

    python benchmarks/codec_lyra.py [--lyra-root LYRA] [--seconds 10] [--agreement]
                                     [--long-minutes 60]

Speed rows (6 kbps, 30 quantizers): the port offline (whole signal) and streaming through
``StreamingEncoder``/``StreamingDecoder`` with 20 ms, 200 ms and 1 s chunks, by default through
the compiled plans (:mod:`audiofcn.codec.lyra_stream`), and with ``fused=False`` through the
eager modules (the path before the plans); the peer is Lyra's own three TFLite graphs run frame
by frame (20 ms, XNNPACK, one thread) as Lyra's C++ runs them, through ``ai-edge-litert`` in the
same process (skipped when it or the Lyra copy is missing). Streaming rows time a whole stream:
encoder and decoder set up (plans built), every chunk encoded and its codes decoded.
RTF = seconds of audio per second of compute, from wall-clock time and from the thread's CPU
time (less sensitive to other jobs on a shared machine); best of ``--repeats``.

Agreement rows (``--agreement``): for test-made signals (voiced, white noise, chirp) and Lyra's
two 16 kHz test clips, at 3.2 / 6 / 9.2 kbps, how far the 20 ms streaming paths (compiled plan
and eager modules) are from the offline ``encode`` / ``decode``: the share of codes and of whole
frames that are identical, and for the decoder (fed the offline codes) the largest absolute
difference and the share of samples more than 1e-6 off.

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
    for fused, label in ((None, "compiled plan"), (False, "eager modules (fused=False)")):
        for chunk_ms in (20, 200, 1000):
            n = 16 * chunk_ms

            def stream(n: int = n, fused: bool | None = fused) -> None:
                enc = StreamingEncoder(model, 30, fused=fused)
                dec = StreamingDecoder(model, fused=fused)
                for i in range(0, x.numel(), n):
                    dec.push(enc.push(x[i:i + n]))

            w, c = timed(stream, repeats)
            rows.append((f"port, {label}, streaming {chunk_ms} ms chunks", seconds / w,
                         seconds / c))
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


def agreement_rows(lyra_root: Path | None) -> list[tuple[str, ...]]:
    model = load_codec().eval()
    rng = np.random.default_rng(1)
    t = np.arange(64000) / 16000
    signals = {"voiced (4 s)": test_audio(4.0),
               "white noise (4 s)": torch.from_numpy(
                   (0.3 * rng.standard_normal(t.size)).astype(np.float32)),
               "chirp 50 Hz-7 kHz (4 s)": torch.from_numpy(
                   (0.5 * np.sin(2 * np.pi * np.cumsum(np.linspace(50, 7000, t.size)) / 16000))
                   .astype(np.float32))}
    for k in (1, 2):
        wav = None if lyra_root is None else lyra_root / "lyra" / "testdata" / \
            f"sample{k}_16kHz.wav"
        if wav is not None and wav.is_file():
            a, _ = sf.read(str(wav), dtype="float32", always_2d=True)
            signals[f"Lyra sample{k}_16kHz.wav"] = torch.from_numpy(a[:, 0].copy())
    rows = []
    with torch.inference_mode():
        for name, x in signals.items():
            for kbps, n_q in ((3.2, 16), (6, 30), (9.2, 46)):
                codes = model.encode(x[None, None], n_q)
                ref = model.decode(codes)
                for fused, label in ((None, "plan"), (False, "eager")):
                    enc = StreamingEncoder(model, n_q, fused=fused)
                    dec = StreamingDecoder(model, fused=fused)
                    got = torch.cat([enc.push(x[i:i + 320]) for i in range(0, x.numel(), 320)]
                                    + [enc.flush()], -1)
                    y = torch.cat([dec.push(codes[..., f:f + 1])
                                   for f in range(codes.shape[-1])], -1)
                    err = (y - ref).abs()
                    rows.append((name, f"{kbps:g}", label,
                                 f"{100 * float((got == codes).float().mean()):.2f}",
                                 f"{100 * float((got == codes).all(1).float().mean()):.1f}",
                                 f"{float(err.max()):.1e}",
                                 f"{100 * float((err > 1e-6).float().mean()):.2f}"))
                    print("| " + " | ".join(rows[-1]) + " |", flush=True)
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
    ap.add_argument("--agreement", action="store_true",
                    help="also compare the 20 ms streaming paths with the offline model")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    root = args.lyra_root if (args.lyra_root / "lyra" / "model_coeffs").is_dir() else None
    if not args.skip_speed:
        print(f"\n{args.seconds:g} s of audio, 6 kbps, one thread\n")
        print("| system | RTF (wall) | RTF (thread CPU) |\n|---|---|---|")
        for name, w, c in speed_rows(args.seconds, args.repeats, root):
            print(f"| {name} | {w:.1f} | {c:.1f} |")
    if args.agreement:
        print("\n| signal | kbps | path | codes equal (%) | frames equal (%) | decoded max abs "
              "diff | samples > 1e-6 off (%) |\n|---|---|---|---|---|---|---|", flush=True)
        agreement_rows(root)
    if args.long_minutes:
        print("\n| run | peak RSS (MB) | wall (s) |\n|---|---|---|", flush=True)
        memory_rows(args.long_minutes, args.models)
    print(f"\nload average: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
