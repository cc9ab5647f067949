"""Log-mel throughput on one thread: audiofcn vs torchaudio vs librosa, same parameters, same run.

    python benchmarks/frontend.py [--seconds 10] [--repeats 5]

Prints a table of seconds of audio processed per second of compute (higher is faster, best of
N runs) and the ratio of audiofcn against each peer. Parameters: 16 kHz, n_fft 512, hop 256,
96 mels, dB with top_db 80. Every library is held to one thread (torch and numpy/BLAS pools).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import librosa
import numpy as np
import torch
import torchaudio
from threadpoolctl import threadpool_limits

from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig

SR, N_FFT, HOP, N_MELS = 16000, 512, 256, 96


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best of ``repeats`` runs after a warm-up: the least disturbed by other processes on a
    shared machine (as ``timeit`` recommends)."""
    fn()  # warm-up (allocations, plan caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    # librosa's FFT and matmul run in numpy/BLAS thread pools that torch's setting does not
    # reach: cap those at one thread too so every row is single-threaded.
    threadpool_limits(1)

    ours = LogMelFrontend(LogMelConfig(mel=MelConfig(SR, STFTConfig(N_FFT, HOP), N_MELS)))
    ta_mel = torchaudio.transforms.MelSpectrogram(
        SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="constant", norm="slaney",
        mel_scale="slaney")
    ta_db = torchaudio.transforms.AmplitudeToDB("power", top_db=80.0)

    rows = []
    for batch in (1, 16):
        rng = np.random.default_rng(0)
        x_np = (0.1 * rng.standard_normal((batch, int(args.seconds * SR)))).astype(np.float32)
        x = torch.from_numpy(x_np)
        audio_s = batch * args.seconds

        def run_librosa(x_np: np.ndarray = x_np) -> None:
            for row in x_np:
                librosa.power_to_db(librosa.feature.melspectrogram(
                    y=row, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS), top_db=80.0)

        with torch.inference_mode():
            t_ours = best_time(lambda x=x: ours(x), args.repeats)
            t_ta = best_time(lambda x=x: ta_db(ta_mel(x)), args.repeats)
        t_lr = best_time(run_librosa, max(2, args.repeats // 2))
        rows.append((batch, audio_s / t_ours, audio_s / t_ta, audio_s / t_lr))

    print(f"log-mel, 1 thread, {args.seconds:g} s clips at {SR} Hz, n_fft {N_FFT}, hop {HOP}, "
          f"{N_MELS} mels (torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
          f"librosa {librosa.__version__})")
    print("| batch | audiofcn (s audio/s) | torchaudio | librosa | vs torchaudio | vs librosa |")
    print("|---:|---:|---:|---:|---:|---:|")
    for b, o, t, lr in rows:
        print(f"| {b} | {o:,.0f} | {t:,.0f} | {lr:,.0f} | {o / t:.2f}x | {o / lr:.2f}x |")


if __name__ == "__main__":
    main()
