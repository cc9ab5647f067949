"""Diarization speed on one thread and peak memory on a long file.

    python benchmarks/diarization.py [--model src/audiofcn/pretrained/diarizer_rcnn.safetensors]
                                     [--seconds 300] [--hour-minutes 60]

Speed: the whole pipeline (VAD, windows of 1.5 s every 0.25 s, embeddings, clustering,
segments) on one synthetic multi-talker recording of ``--seconds`` (harmonic 'voices' in turns),
with the RCNN embedding (default settings, and the opt-in multi-scale embeddings), MFCC
statistics and Resemblyzer (its 1.6-s partials at the same hop) in the same process,
``torch.set_num_threads(1)``. Real-time factor = seconds of audio per second of compute,
from the process's CPU time (what one core costs) and from the wall clock (which on a shared
machine includes waiting for a core).

Memory: a child process diarizes a ``--hour-minutes``-minute WAV file (the same recording,
repeated) and reports its peak resident set size (``ru_maxrss``), imports and model included.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SR = 16000


def synthetic_recording(seconds: float, speakers: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    voices = [(90.0 + 60 * k, 0.5 + 0.6 * k) for k in range(speakers)]
    out, t = [], 0.0
    while t < seconds:
        f0, tilt = voices[int(rng.integers(speakers))]
        dur = float(rng.uniform(1.5, 5.0))
        tt = np.arange(int(dur * SR)) / SR
        phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.03 * np.sin(2 * np.pi * 0.7 * tt))) / SR
        x = sum(np.sin(k * phase) / k ** tilt for k in range(1, 20))
        x *= (np.sin(2 * np.pi * 3.0 * tt) > -0.6)
        out += [0.2 * x / np.abs(x).max(), np.zeros(int(rng.uniform(0.2, 1.0) * SR))]
        t += dur + len(out[-1]) / SR
    y = np.concatenate(out)[: int(seconds * SR)]
    return (y + 1e-3 * rng.standard_normal(len(y))).astype(np.float32)


def time_one(embedder, audio: np.ndarray, config=None) -> tuple[float, float, int]:
    from audiofcn.diarization import diarize

    diarize(audio[: 10 * SR], SR, embedder=embedder, config=config)  # warm-up: lazy imports
    c0, w0 = time.process_time(), time.perf_counter()
    res = diarize(audio, SR, embedder=embedder, config=config)
    return time.process_time() - c0, time.perf_counter() - w0, res.num_speakers


def child(path: str, model: str | None) -> None:
    torch.set_num_threads(1)
    from audiofcn.diarization import RCNNEmbedder, diarize

    t0 = time.perf_counter()
    res = diarize(path, embedder=RCNNEmbedder.from_pretrained(model))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"peak_mb": peak_kb / 1024, "seconds": time.perf_counter() - t0,
                      "speakers": res.num_speakers, "segments": len(res.segments),
                      "cpu_seconds": time.process_time()}))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--seconds", type=float, default=300.0)
    ap.add_argument("--hour-minutes", type=float, default=60.0)
    ap.add_argument("--skip", default="", help="comma list of rows to skip: resemblyzer,memory")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.model)
        return 0
    torch.set_num_threads(1)
    from audiofcn.diarization.embedders import (
        MFCCStatsEmbedder,
        RCNNEmbedder,
        ResemblyzerEmbedder,
    )

    audio = synthetic_recording(args.seconds)
    from audiofcn.diarization import DiarizationConfig

    rcnn = RCNNEmbedder.from_pretrained(args.model)
    rows = [("RCNN (diarizer_rcnn)", rcnn, None),
            ("RCNN, opt-in multi-scale 3.0 / 1.5 / 1.0 s", rcnn,
             DiarizationConfig(scales=(3.0, 1.5, 1.0))),
            ("MFCC statistics", MFCCStatsEmbedder(), None)]
    if "resemblyzer" not in args.skip:
        rows.append(("Resemblyzer", ResemblyzerEmbedder(), None))
    print(f"{args.seconds:.0f} s synthetic 3-talker recording, one thread; "
          f"{os.cpu_count()} CPUs visible\n")
    print("| embedding | CPU s | wall s | RTF (CPU) | RTF (wall) | speakers |")
    print("|---|---|---|---|---|---|")
    for name, emb, cfg in rows:
        cpu, wall, k = time_one(emb, audio, cfg)
        print(f"| {name} | {cpu:.1f} | {wall:.1f} | {args.seconds / cpu:.0f}x | "
              f"{args.seconds / wall:.0f}x | {k} |", flush=True)
    if "memory" in args.skip:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long.wav"
        reps = int(np.ceil(args.hour_minutes * 60 / args.seconds))
        with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as f:
            for _ in range(reps):
                f.write(audio)
        cmd = [sys.executable, __file__, "--child", str(path)] + \
            (["--model", args.model] if args.model else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        minutes = reps * args.seconds / 60
        print(f"\n{minutes:.0f}-minute WAV file (RCNN, one thread): peak RSS "
              f"{r['peak_mb']:.0f} MB, {r['seconds']:.0f} s wall "
              f"({minutes * 60 / r['seconds']:.0f}x real time, wall), "
              f"{r['cpu_seconds']:.0f} s CPU, {r['speakers']} speakers, "
              f"{r['segments']} segments")
    return 0


if __name__ == "__main__":
    sys.exit(main())
