"""Compare settings of the Kalman linear stage on simulated clips from TRAINING speakers.

    python recipes/aec/tune_linear.py --speechocean ~/data/speechocean762 "a=0.999" "a=0.99"

Each argument is a set of ``KalmanConfig`` overrides (``"a=0.99,noise_smoothing=0.8"``; ``""``
for the defaults). Clips: ``aec.simulation`` (AEC-Challenge recipe, simulated rooms,
loudspeaker nonlinearity, no noise files) with near-end and far-end utterances drawn from
speechocean762 ``train/`` speakers only, 6 clips of 8 s per scenario; speexdsp's linear filter
is the reference row. This is how ``KalmanConfig.a`` was chosen (docs/aec.md); the test sets
are never used here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofcn.aec.baselines import speexdsp_available, speexdsp_cancel
from audiofcn.aec.linear import KalmanConfig, kalman_cancel
from audiofcn.aec.metrics import erle, pesq_wb
from audiofcn.aec.simulation import AECSimConfig, simulate_example


def parse(spec: str) -> dict[str, float]:
    return {k.strip(): float(v) for k, v in (p.split("=") for p in spec.split(",") if p)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speechocean", type=Path, required=True, help="speechocean762 root")
    ap.add_argument("--clips", type=int, default=6, help="per scenario")
    ap.add_argument("variants", nargs="*", default=[""])
    args = ap.parse_args(argv)
    lines = (args.speechocean / "train" / "wav.scp").read_text().splitlines()
    files = sorted(args.speechocean / line.split()[1] for line in lines)
    pick = np.random.default_rng(0).choice(len(files), 60, replace=False)
    pool = [sf.read(files[i])[0].astype(np.float32) for i in pick]
    near, far = pool[:30], pool[30:]
    systems = {f"kalman {v or 'defaults'}": (lambda m, r, v=v: kalman_cancel(
        m, r, KalmanConfig(**parse(v)))[0]) for v in args.variants}
    if speexdsp_available():
        systems["speexdsp linear"] = lambda m, r: speexdsp_cancel(m, r, preprocess=False)
    cfg = AECSimConfig(duration=8.0)
    scores: dict[tuple[str, str], list[float]] = {}
    for scenario in ("far_single", "echo_path_change", "double_talk"):
        for seed in range(args.clips):
            ex = simulate_example(seed + 100, near, far, config=cfg, scenario=scenario)
            for name, fn in systems.items():
                out = fn(ex.mic, ex.ref)
                value = pesq_wb(ex.near, out) if scenario == "double_talk" else erle(ex.mic, out)
                scores.setdefault((name, scenario), []).append(value)
    print("| system | FE ERLE dB | path change ERLE dB | DT PESQ-WB |\n|---|---|---|---|")
    for name in systems:
        cells = [f"{np.nanmean(scores[(name, s)]):.2f}"
                 for s in ("far_single", "echo_path_change", "double_talk")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
