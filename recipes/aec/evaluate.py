"""Evaluate echo cancellers on the held-out simulated scenarios and the real pyaec pair.

    python recipes/aec/evaluate.py --model runs/aec/default/best.safetensors \
        --ablation runs/aec/echo_only/best.safetensors --data runs/aec/data \
        --out runs/aec/eval

Systems, all in the same run on the same clips: the unprocessed microphone, our PBFDAF, the
speexdsp echo canceller alone and with its preprocessor (residual echo + noise suppression;
skipped with a message when libspeexdsp is missing), the network, and the echo-mask-only
ablation. Metrics: ERLE on far-end single talk (and after an echo path change); PESQ-WB, STOI
and SI-SDR against the clean near-end on double talk and near-end single talk. Writes
``report.json``, ``table.md`` and ``spectrograms.png`` (mic / reference / outputs of one
double-talk clip) to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from audiofcn.aec.baselines import SPEEXDSP_MISSING, pbfdaf, speexdsp_available, speexdsp_cancel
from audiofcn.aec.hybrid import HybridCanceller
from audiofcn.aec.linear import kalman_cancel
from audiofcn.aec.metrics import clip_metrics, erle, pesq_wb, si_sdr, stoi, summarize
from audiofcn.io import load_audio, read_manifest
from audiofcn.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import DEFAULT_ROOT  # noqa: E402

System = Callable[[np.ndarray, np.ndarray], np.ndarray]


def network(path: Path) -> System:
    model = load_model(path).eval()
    if model.config.hybrid:  # the Kalman linear stage first, then the network
        return HybridCanceller(model).enhance

    def run(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model.enhance(torch.from_numpy(mic)[None], torch.from_numpy(ref)[None])[0] \
                .numpy()
    return run


def systems(model: Path | None, ablation: Path | None,
            hybrid: Path | None = None) -> dict[str, System]:
    out: dict[str, System] = {"mic (unprocessed)": lambda m, r: m, "pbfdaf (ours)": pbfdaf,
                              "kalman linear (ours)": lambda m, r: kalman_cancel(m, r)[0]}
    if speexdsp_available():
        out["speexdsp AEC"] = lambda m, r: speexdsp_cancel(m, r, preprocess=False)
        out["speexdsp AEC+RES+NS"] = lambda m, r: speexdsp_cancel(m, r, preprocess=True)
    else:
        print(f"skipping speexdsp: {SPEEXDSP_MISSING}", file=sys.stderr)
    if model is not None:
        out["network dual mask"] = network(model)
    if ablation is not None:
        out["network echo mask only (ablation)"] = network(ablation)
    if hybrid is not None:
        out["hybrid: kalman + network"] = network(hybrid)
    return out


def real_pair(root: Path, sr: int = 16000) -> dict[str, np.ndarray] | None:
    """pyaec's far-end ``x.wav`` and microphone ``d.wav`` (8 kHz, upsampled): far-end single
    talk, then the male near-end talker (``male.wav``) joins; we locate him in ``d`` by
    cross-correlation to score the double-talk part."""
    from scipy.signal import correlate

    folder = root / "speech" / "pyaec"
    if not (folder / "d.wav").exists():
        return None
    mic = load_audio(folder / "d.wav", sr=sr)[0][0].numpy()
    ref = load_audio(folder / "x.wav", sr=sr)[0][0].numpy()
    male = load_audio(folder / "male.wav", sr=sr)[0][0].numpy()
    lag = int(np.argmax(np.abs(correlate(mic, male, mode="valid"))))
    near = np.zeros_like(mic)
    seg = mic[lag:lag + len(male)]
    near[lag:lag + len(seg)] = male[:len(seg)] * (np.dot(seg, male[:len(seg)])
                                                  / np.dot(male, male))
    return {"mic": mic, "ref": ref, "near": near, "onset": lag}


def spectrogram_png(path: Path, clips: dict[str, np.ndarray], sr: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), 1, figsize=(9, 1.9 * len(clips)), sharex=True)
    for ax, (name, x) in zip(np.atleast_1d(axes), clips.items(), strict=True):
        spec = np.abs(torch.stft(torch.from_numpy(x), 512, 128, window=torch.hann_window(512),
                                 return_complex=True).numpy())
        ax.imshow(20 * np.log10(spec + 1e-6), origin="lower", aspect="auto", cmap="magma",
                  vmin=-80, vmax=20, extent=(0, len(x) / sr, 0, sr / 2000))
        ax.set_ylabel("kHz")
        ax.set_title(name, fontsize=9)
    np.atleast_1d(axes)[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def table(summary: dict, real: dict | None) -> str:
    cols = [("far_single", "erle", "FE-ST ERLE dB"), ("echo_path_change", "erle",
             "path-change ERLE dB"), ("double_talk", "pesq", "DT PESQ-WB"),
            ("double_talk", "stoi", "DT STOI"), ("double_talk", "si_sdr", "DT SI-SDR dB"),
            ("near_single", "pesq", "NE-ST PESQ-WB")]
    head = "| system | " + " | ".join(c[2] for c in cols)
    if real:
        head += " | real pair ERLE dB | real pair DT PESQ-WB"
    lines = [head + " |", "|" + "---|" * (len(cols) + 1 + (2 if real else 0))]
    for system, per in summary.items():
        cells = [f"{per.get(s, {}).get(m, float('nan')):.2f}" for s, m, _ in cols]
        if real:
            r = real.get(system, {})
            cells += [f"{r.get('erle', float('nan')):.2f}", f"{r.get('pesq', float('nan')):.2f}"]
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="evaluate echo cancellers")
    ap.add_argument("--model", type=Path, help="dual-mask network checkpoint")
    ap.add_argument("--ablation", type=Path, help="echo-mask-only network checkpoint")
    ap.add_argument("--hybrid", type=Path,
                    help="hybrid checkpoint (Kalman linear stage + network), a further row")
    ap.add_argument("--data", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("AUDIOFCN_DATA_ROOT", DEFAULT_ROOT)))
    ap.add_argument("--out", type=Path, default=Path("runs/aec/eval"))
    ap.add_argument("--max-clips", type=int, help="per scenario (quick runs)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    records = read_manifest(args.data / "test.jsonl")
    if args.max_clips:
        seen: dict[str, int] = {}
        records = [r for r in records if seen.setdefault(r.label, 0) < args.max_clips
                   and not seen.__setitem__(r.label, seen[r.label] + 1)]
    sr = records[0].sample_rate
    runners = systems(args.model, args.ablation, args.hybrid)
    rows, seconds = [], dict.fromkeys(runners, 0.0)
    example = None
    for rec in records:
        sig = {k: load_audio(args.data / v)[0][0].numpy() for k, v in rec.roles.items()}
        outs = {}
        for name, fn in runners.items():
            t0 = time.perf_counter()
            outs[name] = fn(sig["mic"], sig["ref"])
            seconds[name] += time.perf_counter() - t0
            rows.append({"system": name, "scenario": rec.label, "clip": rec.path,
                         **clip_metrics(rec.label, sig["mic"], outs[name], sig["near"], sr)})
        if example is None and rec.label == "double_talk":
            example = {"microphone": sig["mic"], "far-end reference": sig["ref"],
                       "clean near-end": sig["near"], **outs}
            example.pop("mic (unprocessed)", None)
    summary = summarize(rows)
    real_scores: dict[str, dict[str, float]] = {}
    pair = real_pair(args.data_root, sr)
    if pair is not None:
        on = pair["onset"]
        for name, fn in runners.items():
            out = fn(pair["mic"], pair["ref"])
            real_scores[name] = {"erle": erle(pair["mic"][:on], out[:on]),
                                 "pesq": pesq_wb(pair["near"][on:], out[on:], sr),
                                 "stoi": stoi(pair["near"][on:], out[on:], sr),
                                 "si_sdr": si_sdr(pair["near"][on:], out[on:])}
    audio_seconds = sum(r.duration for r in records)
    report = {"summary": summary, "real_pair": real_scores, "rows": rows,
              "compute_seconds": seconds, "audio_seconds": audio_seconds,
              "clips": len(records), "model": str(args.model), "ablation": str(args.ablation),
              "hybrid": str(args.hybrid)}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    md = table(summary, real_scores or None)
    (args.out / "table.md").write_text(md + "\n")
    if example is not None:
        spectrogram_png(args.out / "spectrograms.png", example, sr)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
