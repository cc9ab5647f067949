"""Evaluate separators on a held-out split with BSS-Eval, next to the IBM oracle and the mixture.

Every system runs through :func:`audiofcn.separation.separate` (full clip, chunked, mixture
phase) and is scored by :mod:`audiofcn.eval.separation` on ``[voice, accompaniment]``. Per-clip
rows are cached per system in ``<out>/rows_<name>.json`` (with the checkpoint's path, time stamp
and the settings), so adding a system re-scores only it.

Usage::

    python recipes/separation/evaluate.py --manifest runs/separation/data/mir1k/manifest.jsonl \\
        --system cnn=runs/separation/cnn_mir1k/model.safetensors \\
        --system fcn=runs/separation/fcn_mir1k/model.safetensors \\
        --system openunmix=runs/separation/openunmix_mir1k/model.safetensors \\
        --out runs/separation/eval_mir1k --png

Writes ``report.json`` (global + per-clip scores, settings) and ``mask.png``; prints a markdown
table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from common import load_split  # noqa: E402

from audiofcn.eval.separation import (  # noqa: E402
    global_scores,
    ibm_oracle,
    mixture_floor,
    score_clip,
)
from audiofcn.frontend import STFTConfig  # noqa: E402
from audiofcn.separation import load_separator, separate  # noqa: E402

ORACLE_STFT = STFTConfig(n_fft=1024, hop_length=256)


def _load_rows(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text()) if path.exists() else {}


def _save_rows(path: Path, rows: dict[str, dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


def evaluate(manifest: Path, systems: dict[str, str], out: Path, split: str = "test",
             threshold: float | None = None, wiener: bool = False, patch_hop: int = 1,
             limit: int | None = None, png: bool = False, sr: int = 16000,
             oracle: bool = True, audio_root: Path | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    clips = load_split(manifest, split, sr, limit, audio_root)
    if not clips:
        raise SystemExit(f"{manifest}: no clips in split {split!r}")
    names = ["mixture", *(["ibm_oracle"] if oracle else []), *systems]
    models = {k: load_separator(v) for k, v in systems.items()}
    timing: dict[str, float] = {}
    all_rows: dict[str, dict[str, dict]] = {}
    for name in names:
        cache = out / f"rows_{name}.json"
        # A system's cached rows are reused only for the same checkpoint file and settings.
        key = {"checkpoint": systems.get(name),
               "settings": [threshold, wiener, patch_hop] if name in systems else None,
               "mtime": Path(systems[name]).stat().st_mtime if name in systems else None}
        cached = _load_rows(cache)
        rows = cached.get("rows", {}) if cached.get("key") == key else {}
        t_model = 0.0
        for rec, v_np, a_np in clips:
            clip = Path(rec.path).stem
            if clip in rows:
                continue
            v, a = torch.from_numpy(v_np), torch.from_numpy(a_np)
            t0 = time.perf_counter()
            if name == "mixture":
                est_v, est_a = mixture_floor(v, a)
            elif name == "ibm_oracle":
                est_v, est_a = ibm_oracle(v, a, ORACLE_STFT)
            else:
                res = separate(v + a, sr, models[name], threshold=threshold, wiener=wiener,
                               patch_hop=patch_hop)
                est_v, est_a = res.vocals[0], res.accompaniment[0]
            t_model += time.perf_counter() - t0
            mix_sdr = all_rows["mixture"][clip]["voice_sdr"] if name != "mixture" else None
            s = score_clip(clip, sr, v, a, est_v, est_a, mix_sdr)
            if name == "mixture":
                s.voice_nsdr = 0.0
            rows[clip] = s.to_dict()
            _save_rows(cache, {"key": key, "rows": rows})
        all_rows[name] = rows
        timing[name] = t_model
        g = global_scores(list(rows.values()))
        print(f"[{name}] GNSDR {g['GNSDR']:.2f} GSIR {g['GSIR']:.2f} GSAR {g['GSAR']:.2f} "
              f"({len(rows)} clips)", flush=True)
    report = {
        "manifest": str(manifest), "split": split, "sample_rate": sr,
        "settings": {"threshold": threshold, "wiener": wiener, "patch_hop": patch_hop},
        "systems": {k: v for k, v in systems.items()},
        "parameters": {k: m.num_parameters() for k, m in models.items()},
        "separation_seconds": timing,
        "global": {n: global_scores(list(all_rows[n].values())) for n in names},
        "clips": {n: all_rows[n] for n in names},
    }
    if png:
        report["png"] = str(mask_png(clips[0], models, out / "mask.png", sr))
    (out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def tune_threshold(manifest: Path, checkpoint: str, candidates: list[float | None],
                   split: str = "valid", sr: int = 16000, audio_root: Path | None = None,
                   patch_hop: int = 1) -> tuple[float | None, dict[str, float]]:
    """Pick the mask threshold (``None`` = soft mask) on a *validation* split, by the
    duration-weighted voice SI-SDR (cheap, no BSS-Eval), never on the test split."""
    from audiofcn.eval.separation import si_sdr

    model = load_separator(checkpoint)
    clips = load_split(manifest, split, sr, None, audio_root)
    scores: dict[str, float] = {}
    for thr in candidates:
        total, weight = 0.0, 0.0
        for _, v_np, a_np in clips:
            v, a = torch.from_numpy(v_np), torch.from_numpy(a_np)
            res = separate(v + a, sr, model, threshold=thr, patch_hop=patch_hop)
            total += len(v_np) * si_sdr(v, res.vocals[0])
            weight += len(v_np)
        scores[str(thr)] = total / weight
        print(f"[tune {split}] threshold {thr}: voice SI-SDR {scores[str(thr)]:.2f}", flush=True)
    best = max(candidates, key=lambda t: scores[str(t)])
    return best, scores


def mask_png(clip: tuple, models: dict, path: Path, sr: int) -> Path:
    """Mixture spectrogram, ideal binary mask and each model's soft mask for one clip."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiofcn.frontend import STFT

    rec, v_np, a_np = clip
    v, a = torch.from_numpy(v_np), torch.from_numpy(a_np)
    stft = STFT(ORACLE_STFT)
    V, A = stft(v).abs(), stft(a).abs()
    X = stft(v + a)
    panels = [("mixture |X| (dB)", 20 * torch.log10(X.abs() + 1e-5), "magma"),
              ("ideal binary mask", (V > A).float(), "gray")]
    for name, m in models.items():
        with torch.inference_mode():
            spec = STFT(m.config.stft)(v + a)
            panels.append((f"{name} soft vocal mask", m.predict_mask(spec.abs()[None])[0],
                           "gray"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.2 * len(panels)), sharex=True)
    dur = len(v_np) / sr
    for ax, (title, img, cmap) in zip(axes, panels, strict=True):
        ax.imshow(img.numpy(), origin="lower", aspect="auto", cmap=cmap,
                  extent=(0, dur, 0, sr / 2000))
        ax.set(title=f"{Path(rec.path).stem}: {title}", ylabel="kHz")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def markdown(report: dict) -> str:
    lines = ["| system | params | GNSDR | GSIR | GSAR | voice SDR | voice SI-SDR |",
             "|---|---|---|---|---|---|---|"]
    for name, g in report["global"].items():
        p = report["parameters"].get(name)
        lines.append(f"| {name} | {p / 1e6:.2f} M |" if p else f"| {name} | – |")
        lines[-1] += (f" {g['GNSDR']:.2f} | {g['GSIR']:.2f} | {g['GSAR']:.2f} |"
                      f" {g['voice_SDR']:.2f} | {g['voice_SI_SDR']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="BSS-Eval of separators on a held-out split")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--system", action="append", default=[], metavar="NAME=CHECKPOINT")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--tune-threshold", action="store_true",
                    help="choose the threshold (or soft mask) on the valid split for the first "
                         "--system, then evaluate every system with it")
    ap.add_argument("--wiener", action="store_true")
    ap.add_argument("--patch-hop", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N clips only (smoke tests)")
    ap.add_argument("--png", action="store_true")
    ap.add_argument("--no-oracle", action="store_true", help="skip the IBM oracle row")
    ap.add_argument("--audio-root", type=Path, default=None,
                    help="root of the manifest's relative paths (default: its folder)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    systems = dict(s.split("=", 1) for s in args.system)
    threshold = args.threshold
    if args.tune_threshold:
        threshold, scores = tune_threshold(args.manifest, next(iter(systems.values())),
                                           [None, 0.15, 0.25, 0.35, 0.5],
                                           audio_root=args.audio_root, patch_hop=args.patch_hop)
        print(f"[tune] chosen threshold: {threshold} ({scores})")
    report = evaluate(args.manifest, systems, args.out, args.split, threshold, args.wiener,
                      args.patch_hop, args.limit, args.png, oracle=not args.no_oracle,
                      audio_root=args.audio_root)
    print(markdown(report))


if __name__ == "__main__":
    main()
