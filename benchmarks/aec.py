"""Streaming echo cancellation speed on one thread: time per hop and real-time factor.

    python benchmarks/aec.py [--model src/audiofcn/pretrained/aec_default.safetensors]
                             [--model OTHER ...] [--seconds 10] [--repeats 3] [--no-reference]

Every system processes the same 16 kHz microphone/reference pair frame by frame, the way a
call does: the network through ``EchoCanceller.process`` (one 10 ms hop per call, all state
carried; its precomputed per-frame step; a hybrid checkpoint runs the whole chain, Kalman
linear stage + network, through ``audiofcn.aec.HybridCanceller.process``), an end-to-end
network through the layer-by-layer ``forward_stream`` path with the chunked streaming
STFT/iSTFT (what ``process`` ran before the per-frame step; kept as the in-run reference),
speexdsp's echo canceller (10 ms frames, with
and without its preprocessor; skipped with a message when libspeexdsp is missing:
``apt-get install libspeexdsp1``) and our PBFDAF (16 ms blocks, whole signal). Real-time
factor = seconds of audio per second of compute (> 1 is faster than real time), from the
thread's CPU time per frame and from the wall-clock time (which on a shared machine includes
waiting for a core). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch


def _signals(seconds: float, sr: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    ref = (0.1 * rng.standard_normal(n)).astype(np.float32)
    h = (rng.standard_normal(2000) * np.exp(-np.arange(2000) / 300)).astype(np.float32) * 0.2
    mic = (np.convolve(ref, h)[:n] + 0.01 * rng.standard_normal(n)).astype(np.float32)
    return mic, ref


def _per_frame(fn, mic: np.ndarray, ref: np.ndarray, frame: int) -> list[tuple[float, float]]:
    """(wall seconds, CPU seconds of this thread) per frame. On a shared machine the wall
    time includes waiting for a core; the thread's CPU time does not."""
    times = []
    for i in range(0, len(mic) - frame + 1, frame):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn(mic[i:i + frame], ref[i:i + frame])
        times.append((time.perf_counter() - t0, time.thread_time() - c0))
    return times


def main(argv: list[str] | None = None) -> int:
    from audiofcn.aec.baselines import (
        SPEEXDSP_MISSING,
        SpeexEchoCanceller,
        pbfdaf,
        speexdsp_available,
    )
    from audiofcn.aec.linear import KalmanEchoFilter
    from audiofcn.frontend import StreamingSTFT
    from audiofcn.frontend.streaming_istft import StreamingISTFT
    from audiofcn.models import load_model
    from audiofcn.models.echo import EchoCanceller

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parents[1] / "src/audiofcn/pretrained/aec_default" \
        ".safetensors"
    ap.add_argument("--model", type=Path, action="append",
                    help="checkpoint (repeat for several; default: the shipped one)")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the layer-by-layer forward_stream reference row")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sr = 16000
    mic, ref = _signals(args.seconds, sr)
    from audiofcn.aec.hybrid import HybridCanceller

    paths = args.model or [default]
    models = [(load_model(p) if p.exists() else EchoCanceller()).eval() for p in paths]
    rows = []
    systems = []
    for model in models:
        def net_run(model: EchoCanceller = model) -> list[tuple[float, float]]:
            if model.config.hybrid:  # the whole chain: Kalman linear stage + network
                stream = HybridCanceller(model)
                return _per_frame(stream.process, mic, ref, model.hop_length)
            stream = model.open_stream()
            return _per_frame(lambda m, r: stream.process(torch.from_numpy(m),
                                                          torch.from_numpy(r)),
                              mic, ref, model.hop_length)
        kind = ("hybrid chain: Kalman linear stage + network" if model.config.hybrid
                else "network")
        systems.append((f"{kind} ({model.num_parameters() / 1e3:.0f}K params), process() per "
                        "hop", model.hop_length, net_run))
    model = next((m for m in models if not m.config.hybrid), None)

    def layer_run() -> list[tuple[float, float]]:
        st, ist, state = StreamingSTFT(model.config.stft), StreamingISTFT(model.config.stft), {}

        @torch.inference_mode()
        def hop(m: np.ndarray, r: np.ndarray) -> torch.Tensor:
            spec = st.push(torch.stack([torch.from_numpy(m), torch.from_numpy(r)])[None])
            return ist.push(model.forward_stream(spec[:, 0], spec[:, 1], state)["near"])
        return _per_frame(hop, mic, ref, model.hop_length)

    if not args.no_reference and model is not None:
        systems.append(("same network, layer-by-layer forward_stream + chunked STFT/iSTFT "
                        "(reference)", model.hop_length, layer_run))
    if speexdsp_available():
        for pp in (False, True):
            def speex_run(pp: bool = pp) -> list[tuple[float, float]]:
                aec = SpeexEchoCanceller(sr, 160, 4000, preprocess=pp)
                return _per_frame(aec.process, mic, ref, 160)
            systems.append((f"speexdsp AEC{' + preprocess' if pp else ''}", 160, speex_run))
    else:
        print(f"skipping speexdsp: {SPEEXDSP_MISSING}")

    def pb_run() -> list[tuple[float, float]]:
        t0, c0 = time.perf_counter(), time.thread_time()
        pbfdaf(mic, ref)
        n = len(mic) // 256
        return [((time.perf_counter() - t0) / n, (time.thread_time() - c0) / n)] * n
    systems.append(("PBFDAF (ours, numpy), 4096 taps", 256, pb_run))

    def kalman_run() -> list[tuple[float, float]]:
        f = KalmanEchoFilter()
        return _per_frame(f.process, mic.astype(np.float64), ref.astype(np.float64), 160)
    from audiofcn.aec.kalman_kernels import AVAILABLE as fused

    kind = "numba kernels" if fused else "numpy"
    systems.append((f"Kalman linear stage (ours, aec.linear, {kind}), 4160 taps, per hop", 160,
                    kalman_run))

    for name, frame, fn in systems:
        fn()  # warm-up (allocations, caches)
        per = []
        for _ in range(args.repeats):
            per += fn()
        wall = [w for w, _ in per]
        cpu = [c for _, c in per]
        cpu_mean, cpu_p90 = statistics.fmean(cpu), float(np.percentile(cpu, 90))
        wall_mean, wall_median = statistics.fmean(wall), statistics.median(wall)
        rows.append((name, 1000 * frame / sr, 1e6 * cpu_mean, 1e6 * cpu_p90, 1e6 * wall_median,
                     frame / sr / cpu_mean, frame / sr / wall_mean))
    m0 = models[0]
    print(f"one thread, {platform.processor() or platform.machine()}, torch {torch.__version__}; "
          f"{args.seconds:.0f} s of audio x {args.repeats}; algorithmic latency of the network "
          f"{m0.algorithmic_latency_ms:.0f} ms (one {m0.config.stft.n_fft}-sample frame, "
          "no look-ahead; the linear stage adds none)\n")
    print(f"machine load average while measuring: {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs (timings of a shared machine inflate with it)\n")
    print("| system | frame (ms) | CPU per frame, mean (us) | CPU per frame, 90th pct (us) | "
          "wall per frame, median (us) | real-time factor (CPU) | "
          "real-time factor (wall, mean) |")
    print("|---|---|---|---|---|---|---|")
    for name, ms, cpu_us, p90_us, med_us, rtf, rtf_wall in rows:
        print(f"| {name} | {ms:.0f} | {cpu_us:.0f} | {p90_us:.0f} | {med_us:.0f} | {rtf:.1f}x | "
              f"{rtf_wall:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
