"""``audiofcn demo``: the main job on built-in data, end to end, with no external data.

The demo renders a small catalog with the built-in synthesizer, then runs each step in
``DEMO_STEPS`` on it. Each step is ``"module:function"`` taking ``(out_dir, catalog_dir)`` and
returning a one-line summary; capabilities add their step here as they land.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

DEMO_STEPS = [
    "audiofcn.cli.demo:logmel_step",
    "audiofcn.cli.tag:demo_step",
    "audiofcn.cli.separate:separate_step",
    "audiofcn.cli.aec:aec_step",
    "audiofcn.cli.similarity:similarity_step",
    "audiofcn.cli.codec:codec_step",
    "audiofcn.cli.diarize:demo_step",
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run every capability on built-in rendered music")
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--n", type=int, default=24, help="songs in the demo catalog")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def logmel_step(out: Path, catalog: Path) -> str:
    """Log-mel spectrogram of the first song, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
    from audiofcn.io import load_audio, read_manifest

    rec = read_manifest(catalog / "manifest.jsonl")[0]
    audio, sr = load_audio(rec.resolve(catalog))
    fe = LogMelFrontend(LogMelConfig(mel=MelConfig(sr, STFTConfig(1024, 256), 96)))
    with torch.inference_mode():
        logmel = fe(audio)[0]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    im = ax.imshow(logmel.numpy(), origin="lower", aspect="auto", cmap="magma",
                   extent=(0, audio.shape[-1] / sr, 0, logmel.shape[0]))
    ax.set(xlabel="time (s)", ylabel="mel bin", title=f"{rec.path}: {', '.join(rec.tags)}")
    fig.colorbar(im, ax=ax, label="dB")
    fig.tight_layout()
    png = out / "logmel.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return f"log-mel {tuple(logmel.shape)} of {rec.path} -> {png}"


def run(args: argparse.Namespace) -> int:
    from audiofcn.data.synth import synth_catalog

    out = Path(args.out)
    catalog = out / "catalog"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = synth_catalog(catalog, args.n, seed=args.seed, with_stems=True)
    print(f"[catalog] {len(records)} rendered songs with stems and tags -> {catalog}")
    for step in DEMO_STEPS:
        module, fn = step.split(":")
        name = fn.removesuffix("_step")
        print(f"[{name}] {getattr(importlib.import_module(module), fn)(out, catalog)}",
              flush=True)
    print(f"demo finished in {time.perf_counter() - t0:.1f} s; outputs in {out.resolve()}")
    return 0
