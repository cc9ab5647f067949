"""Check the 50-tag MSD taggers on real music without tag labels, and choose the inference
policy for short clips on validation singers only.

    python recipes/tagging/real_music_check.py --data-root /work/shared/data \
        --models msd50_crnn,msd50_fcn --out runs/tagging/real_music.json

MIR-1K (``mir1k/Wavfile``, stereo: left = accompaniment, right = voice) gives the same music
with and without singing: mixture = left + right, accompaniment = left. A tagger that hears
voices should score the vocal tags higher on the mixture and "instrumental" higher on the
accompaniment: ROC-AUC of a vocal score (mixture positive) and of "instrumental"
(accompaniment positive). Both versions are scaled to the same RMS first (``rms_matched``), so
loudness cannot decide; ``raw`` levels are reported for the reference policy too.

MIR-1K clips last 4-12 s; the models take 29.12 s. Policies for a short clip (``FILLS``):
``pad`` zero-pads it to 29.12 s (the published ``audio_processor.py``; ``audiofcn tag``),
``loop`` repeats it to fill 29.12 s, ``own`` runs the model on the clip's own frames (CRNN
only: its GRU reads any number of steps; the FCN's pools need ≥ 1280 frames, 27.3 s).
Vocal scores (``VOCAL_SCORES``): each vocal tag of the 50 (there is no "male vocalist"), their
sum or maximum, and the sum minus "instrumental".

**Split by singer, fixed**: the 12 singers sorted case-insensitively, even positions
(abjones, annar, bobon, davidson, geniusturtle, jmzen) are the *validation* half, odd
positions (amy, ariel, bug, fdps, heycat, Kenshin) the *test* half. For each model and fill
the vocal score with the best validation AUC is taken; the fill with the best validation mean
of (that vocal AUC, "instrumental" AUC) is chosen; its test AUCs are the result. Every policy
is reported on both halves (and on all clips).

Also lists the top tags of the songs in ``librosa/`` and of the Philharmonia ``*phrase*``
recordings (no labels: for reading).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiofcn.io import atomic_output
from audiofcn.tagging import load_tagger, predict_track, tag_files

TAGS = ("female vocalists", "male vocalists", "female vocalist", "instrumental")
FV, MV, FV1, INS = range(4)
VOCAL_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "female vocalists": lambda p: p[:, FV],
    "male vocalists": lambda p: p[:, MV],
    "female vocalist": lambda p: p[:, FV1],
    "sum(female vocalists, male vocalists)": lambda p: p[:, FV] + p[:, MV],
    "max(female vocalists, male vocalists)": lambda p: np.maximum(p[:, FV], p[:, MV]),
    "sum of the 3 vocal tags": lambda p: p[:, [FV, MV, FV1]].sum(1),
    "max of the 3 vocal tags": lambda p: p[:, [FV, MV, FV1]].max(1),
    "sum of the 3 vocal tags - instrumental": lambda p: p[:, [FV, MV, FV1]].sum(1) - p[:, INS],
}
FILLS = ("pad", "loop", "own")


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if not len(pos) or not len(neg):
        return float("nan")
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(y, np.r_[pos, neg]))


def singer_split(singers: list[str]) -> dict[str, str]:
    """Singer -> "validation" | "test": sorted case-insensitively, even positions validate."""
    order = sorted(set(singers), key=str.lower)
    return {s: ("validation" if i % 2 == 0 else "test") for i, s in enumerate(order)}


def fill(audio: torch.Tensor, length: int, mode: str) -> torch.Tensor:
    """Repeat a clip shorter than one chunk until it fills it (``loop``), or leave it to the
    tagger's zero padding (``pad``)."""
    if mode == "loop" and audio.shape[-1] < length:
        reps = -(-length // audio.shape[-1])
        return audio.repeat(reps)[:length]
    return audio


@torch.inference_mode()
def clip_probs(model: torch.nn.Module, audio: torch.Tensor, mode: str) -> np.ndarray:
    """Track probabilities of one clip under an inference policy (``FILLS``)."""
    length = model.config.input_length
    if mode == "own" and audio.shape[-1] < length:
        logits = model.classifier(model.embed_unpadded(model.frontend(audio[None])))
        return torch.sigmoid(logits)[0].numpy()
    return predict_track(model, fill(audio, length, mode)).numpy()


def score_clips(models: dict[str, torch.nn.Module], wav_dir: Path, limit: int | None,
                progress: Path | None = None) -> dict:
    """Per clip and policy, the probabilities of ``TAGS`` for both versions."""
    files = sorted(wav_dir.glob("*.flac")) + sorted(wav_dir.glob("*.wav"))
    files = files[:: max(1, len(files) // limit)][:limit] if limit else files  # spread
    out: dict = {"clips": [f.name for f in files],
                 "singers": [f.name.split("_")[0] for f in files], "scores": {}}
    for n_done, f in enumerate(files, 1):
        x, file_sr = sf.read(str(f), dtype="float32", always_2d=True)
        if x.shape[1] != 2:
            raise SystemExit(f"{f}: expected stereo (left accompaniment, right voice)")
        versions = {"mixture": x[:, 0] + x[:, 1], "accompaniment": x[:, 0]}
        rms = {k: float(np.sqrt(np.mean(v ** 2)) + 1e-12) for k, v in versions.items()}
        for mname, model in models.items():
            labels = list(model.config.labels)
            idx = [labels.index(t) for t in TAGS]
            sr = model.config.sample_rate
            for level in ("rms_matched", "raw"):
                fills = [m for m in FILLS if m != "own" or hasattr(model, "embed_unpadded")] \
                    if level == "rms_matched" else ["pad"]
                for name, v in versions.items():
                    if level == "rms_matched":  # both at the mixture's RMS
                        v = v * (rms["mixture"] / rms[name])
                    a = torch.from_numpy(soxr.resample(v, file_sr, sr, "HQ").astype(np.float32))
                    for mode in fills:
                        p = clip_probs(model, a, mode)[idx]
                        out["scores"].setdefault(f"{mname}/{level}/{mode}", {}).setdefault(
                            name, []).append([round(float(q), 7) for q in p])
        if progress and (n_done % 40 == 0 or n_done == len(files)):
            with atomic_output(progress) as tmp:
                tmp.write_text(json.dumps({"clips_done": n_done}))
    return out


def evaluate(scored: dict) -> dict:
    """AUCs of every policy on the validation and test singers and on all clips, and the
    policy chosen on validation (see the module docstring)."""
    split_of = singer_split(scored["singers"])
    split = np.array([split_of[s] for s in scored["singers"]])
    result: dict = {"split": {h: sorted({s for s in scored["singers"] if split_of[s] == h},
                                        key=str.lower) for h in ("validation", "test")},
                    "policies": {}, "chosen": {}}
    for key, s in scored["scores"].items():
        mix, acc = np.array(s["mixture"]), np.array(s["accompaniment"])
        r: dict = {}
        for half in ("validation", "test", "all"):
            m = np.ones(len(split), bool) if half == "all" else split == half
            h: dict = {"clips": int(m.sum()), "vocal": {}, "vocal paired": {}}
            for name, fn in VOCAL_SCORES.items():
                v_mix, v_acc = fn(mix[m]), fn(acc[m])
                h["vocal"][name] = roc_auc(v_mix, v_acc)
                h["vocal paired"][name] = float((v_mix > v_acc).mean())
            h["instrumental"] = roc_auc(acc[m, INS], mix[m, INS])
            h["instrumental paired"] = float((acc[m, INS] > mix[m, INS]).mean())
            r[half] = h
        best = max(VOCAL_SCORES, key=lambda n: r["validation"]["vocal"][n])
        r["vocal score chosen on validation"] = best
        r["validation criterion"] = (r["validation"]["vocal"][best] +
                                     r["validation"]["instrumental"]) / 2
        result["policies"][key] = r
    for model in sorted({k.split("/")[0] for k in scored["scores"]}):
        cands = {k: v for k, v in result["policies"].items()
                 if k.startswith(f"{model}/rms_matched/")}
        key = max(cands, key=lambda k: cands[k]["validation criterion"])
        r = cands[key]
        best = r["vocal score chosen on validation"]
        result["chosen"][model] = {
            "policy": key.split("/")[-1], "vocal score": best,
            "validation": {"vocal": r["validation"]["vocal"][best],
                           "instrumental": r["validation"]["instrumental"]},
            "test": {"vocal": r["test"]["vocal"][best],
                     "instrumental": r["test"]["instrumental"]}}
    return result


def print_tables(result: dict) -> None:
    print("| model / level / policy | vocal score (chosen on validation) | "
          "vocal AUC val / test | instrumental AUC val / test | paired vocal / instr. (test) |")
    print("|---|---|---:|---:|---:|")
    for key, r in result["policies"].items():
        b = r["vocal score chosen on validation"]
        v, t = r["validation"], r["test"]
        print(f"| {key} | {b} | {v['vocal'][b]:.3f} / {t['vocal'][b]:.3f} | "
              f"{v['instrumental']:.3f} / {t['instrumental']:.3f} | "
              f"{t['vocal paired'][b]:.2f} / {t['instrumental paired']:.2f} |")
    print("\nevery vocal score, validation / test AUC:\n")
    names = list(VOCAL_SCORES)
    print("| model / level / policy | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for key, r in result["policies"].items():
        print(f"| {key} | " + " | ".join(
            f"{r['validation']['vocal'][n]:.3f} / {r['test']['vocal'][n]:.3f}"
            for n in names) + " |")
    print("\nchosen on validation:", json.dumps(result["chosen"], indent=2))


def top_tags(model: torch.nn.Module, files: list[Path], k: int = 5) -> dict[str, list]:
    out = {}
    for res in tag_files(model, files):
        if isinstance(res, Exception):
            out[str(res)] = []
            continue
        out[Path(res.path).name] = [(t, round(s, 3)) for t, s in res.top(k)]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", required=True, type=Path)
    ap.add_argument("--models", default="msd50_crnn,msd50_fcn")
    ap.add_argument("--out", type=Path, required=True, help="report .json")
    ap.add_argument("--limit", type=int,
                    help="MIR-1K clips to use, spread over the singers (default all)")
    ap.add_argument("--parts", default="mir1k,librosa,philharmonia")
    ap.add_argument("--rescore", action="store_true",
                    help="recompute the AUCs from the scores in --out (no inference)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.rescore:
        report = json.loads(args.out.read_text())
        report["mir1k"] = evaluate(report["mir1k_scores"])
    else:
        models = {m: load_tagger(m) for m in args.models.split(",")}
        report = {"models": list(models)}
        parts = args.parts.split(",")
        if "mir1k" in parts:
            report["mir1k_scores"] = score_clips(models, args.data_root / "mir1k" / "Wavfile",
                                                 args.limit,
                                                 args.out.with_suffix(".partial.json"))
            report["mir1k"] = evaluate(report["mir1k_scores"])
        for name, model in models.items():
            if "librosa" in parts:
                songs = [p for p in sorted((args.data_root / "librosa").glob("*.ogg"))
                         if p.with_suffix(".txt").exists() and "librispeech" not in
                         p.with_suffix(".txt").read_text(errors="ignore").lower()]
                report.setdefault("librosa", {})[name] = top_tags(model, songs)
            if "philharmonia" in parts:
                report.setdefault("philharmonia_phrases", {})[name] = top_tags(
                    model, sorted((args.data_root / "philharmonia").glob("*phrase*.mp3")), 3)
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    if "mir1k" in report:
        print_tables(report["mir1k"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
