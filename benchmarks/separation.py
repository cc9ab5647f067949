"""Separation speed and memory on one thread: paper CNN vs FCN variant vs Open-Unmix.

Each system separates the same synthetic stereo track (default 3 minutes at 16 kHz) with
:func:`audiofcn.separation.separate` (full pipeline: resampling, chunked STFT, mask, iSTFT), in its
own subprocess so that peak memory is that system's alone. Real-time factor = seconds of audio per
second of compute (higher is faster), from wall time and from process CPU time (the latter is the
honest number on a shared machine). Weights are random unless checkpoints are given: speed does
not depend on them.

Usage::

    python benchmarks/separation.py                      # 180 s track, all systems
    python benchmarks/separation.py --seconds 30 --paper # + the full-size paper config
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SYSTEMS = {
    "fcn": "FCN variant (ours, 8-128 ch + scSE)",
    "fcn_small": "FCN variant, small (4-64 ch, no SE)",
    "fcn_fast": "FCN variant, fast (2x2-strided stem, 8-128 ch + scSE)",
    "cnn_hop9": "paper CNN, disjoint patches (hop 9)",
    "cnn": "paper CNN, one patch per frame (paper)",
    "openunmix": "Open-Unmix (same STFT)",
    "cnn_paper_config": "paper CNN, paper config (22.05 kHz, FFT 4096, 2049 bins)",
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def worker(kind: str, seconds: float, checkpoint: str | None) -> dict:
    import torch

    torch.set_num_threads(1)
    from audiofcn.models.separator import (
        FCNSeparator,
        FCNSeparatorConfig,
        PatchSeparator,
        PatchSeparatorConfig,
    )
    from audiofcn.separation import load_separator, separate

    if checkpoint:
        model = load_separator(checkpoint)
    elif kind == "fcn":
        model = FCNSeparator()
    elif kind == "fcn_fast":
        model = FCNSeparator(FCNSeparatorConfig(stem_stride=(2, 2)))
    elif kind == "fcn_small":
        model = FCNSeparator(FCNSeparatorConfig(channels=(4, 8, 16, 32, 64), se=False))
    elif kind.startswith("cnn"):
        model = PatchSeparator(PatchSeparatorConfig.paper() if kind == "cnn_paper_config"
                               else None)
    elif kind == "openunmix":
        from audiofcn.separation.peers import OpenUnmixPeer

        model = OpenUnmixPeer()
    else:
        raise SystemExit(f"unknown system {kind}")
    model.eval()
    sr = 16000
    g = torch.Generator().manual_seed(0)
    t = torch.arange(int(seconds * sr)) / sr
    tones = 0.2 * torch.sin(2 * torch.pi * 220 * t) + 0.1 * torch.sin(2 * torch.pi * 880 * t)
    audio = torch.stack([tones, tones.roll(1000)]) + 0.05 * torch.randn(2, t.numel(), generator=g)
    hop = 9 if kind == "cnn_hop9" else 1
    with torch.inference_mode():
        separate(audio[:, :sr], sr, model, patch_hop=hop)  # warm-up
    base = _rss_mb()
    w0, c0 = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        res = separate(audio, sr, model, patch_hop=hop)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    assert res.vocals.shape == audio.shape
    return {"system": kind, "params": model.num_parameters(), "seconds": seconds,
            "rtf_wall": seconds / wall, "rtf_cpu": seconds / cpu, "peak_rss_mb": _rss_mb(),
            "peak_increase_mb": _rss_mb() - base}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=180.0, help="track length (default 180)")
    ap.add_argument("--systems", nargs="*",
                    default=["fcn", "fcn_fast", "fcn_small", "openunmix", "cnn_hop9", "cnn"])
    ap.add_argument("--paper", action="store_true", help="also the full-size paper config")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="SYSTEM=PATH")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    ckpts = dict(c.split("=", 1) for c in args.checkpoint)
    if args.worker:
        print(json.dumps(worker(args.worker, args.seconds, ckpts.get(args.worker))))
        return
    systems = args.systems + (["cnn_paper_config"] if args.paper else [])
    rows = []
    for kind in systems:
        cmd = [sys.executable, __file__, "--worker", kind, "--seconds", str(args.seconds)]
        cmd += [f"--checkpoint={c}" for c in args.checkpoint]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(f"{kind}: failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {kind}", file=sys.stderr, flush=True)
    print(f"\nSeparation of a {args.seconds:.0f} s stereo track at 16 kHz, one thread "
          "(RTF = audio seconds per compute second; higher is faster)\n")
    print("| system | params | RTF (wall) | RTF (CPU time) | peak RSS | peak increase |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {SYSTEMS[r['system']]} | {r['params'] / 1e6:.2f} M | {r['rtf_wall']:.1f}× | "
              f"{r['rtf_cpu']:.1f}× | {r['peak_rss_mb']:.0f} MB | {r['peak_increase_mb']:.0f} MB |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
