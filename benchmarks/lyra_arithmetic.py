"""The Lyra port's arithmetics on one thread: XNNPACK's int8 ("xnnpack", bit-exact with Lyra's
runtime), TFLite's reference kernels ("tflite") and the training path's float rounding
("float").

    OMP_NUM_THREADS=1 python benchmarks/lyra_arithmetic.py [--seconds 10] [--repeats 3]

6 kbps (30 quantizers), a test-made voiced signal. Rows: offline encode+decode of the whole
signal, and streaming through ``StreamingEncoder``/``StreamingDecoder`` in 20 ms and 1 s chunks.
RTF = seconds of audio per second of the thread's CPU time, best of ``--repeats`` after a
warm-up (numba compiles the fused kernels on first use).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch

from audiofcn.codec import StreamingDecoder, StreamingEncoder, load_codec


def signal(seconds: float, sr: int = 16000) -> torch.Tensor:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 3 * t)) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    x = 0.2 * voice / np.abs(voice).max() + np.random.default_rng(0).standard_normal(t.size) * 0.01
    return torch.from_numpy(x.astype(np.float32))


def cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = load_codec()
    x = signal(args.seconds)

    def offline() -> None:
        model.decode(model.encode(x[None, None], 30))

    def streaming(chunk: int) -> Callable[[], None]:
        def run() -> None:
            enc, dec = StreamingEncoder(model, 30), StreamingDecoder(model)
            for i in range(0, x.numel(), chunk):
                dec.push(enc.push(x[i:i + chunk]))
            dec.push(enc.flush())
        return run

    rows = [("offline (whole signal)", offline), ("streaming 20 ms chunks", streaming(320)),
            ("streaming 1 s chunks", streaming(16000))]
    modes = ("xnnpack", "tflite", "float")
    print(f"| {args.seconds:g} s, 6 kbps, one thread | "
          + " | ".join(f"RTF `{m}`" for m in modes) + " |")
    print("|---|" + "---:|" * len(modes))
    for name, fn in rows:
        rtf = []
        for arithmetic in modes:
            model.arithmetic = arithmetic
            rtf.append(args.seconds / cpu_seconds(fn, args.repeats))
        model.arithmetic = "float"
        print(f"| {name} | " + " | ".join(f"{r:.1f}" for r in rtf) + " |", flush=True)


if __name__ == "__main__":
    main()
