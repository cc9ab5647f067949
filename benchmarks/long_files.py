"""Write the synthetic 60-minute inputs used to measure peak memory of ``aec`` and ``separate``
(docs/robustness.md), block by block so this script itself stays small in memory.

    python benchmarks/long_files.py OUT_DIR [--minutes 60]

Writes ``mic.wav`` and ``ref.wav`` (16 kHz mono PCM16 noise) and ``song.wav`` (44.1 kHz stereo
PCM16: a slowly rising tone plus noise).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--minutes", type=int, default=60)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    blocks = args.minutes * 6  # 10-s blocks
    for name in ("mic.wav", "ref.wav"):
        with sf.SoundFile(args.out / name, "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(blocks):
                f.write((0.1 * rng.standard_normal(160000)).astype(np.float32))
    t = np.arange(441000) / 44100
    with sf.SoundFile(args.out / "song.wav", "w", 44100, 2, subtype="PCM_16") as f:
        for i in range(blocks):
            x = 0.2 * np.sin(2 * np.pi * (220 + i) * t)[:, None] + \
                0.05 * rng.standard_normal((len(t), 2))
            f.write(x.astype(np.float32))


if __name__ == "__main__":
    main()
