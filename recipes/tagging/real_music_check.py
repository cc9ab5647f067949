"""Check a 50-tag MSD tagger on real music without tag labels.

    python recipes/tagging/real_music_check.py --data-root /work/shared/data \
        --model msd50_crnn --out runs/tagging/real_music_msd50_crnn.json

MIR-1K (``mir1k/Wavfile``, stereo: left = accompaniment, right = voice) gives the same music
with and without singing: mixture = left + right, accompaniment = left. A tagger that hears
voices should score the vocal tags higher on the mixture and "instrumental" higher on the
accompaniment: ROC-AUC of the vocal tags (mixture positive) and of "instrumental"
(accompaniment positive), over all clips. Both versions are scaled to the same RMS first, so
loudness cannot decide (the raw-level AUCs, zero-padded, are reported too). MIR-1K clips last
4-12 s; the models take 29.12 s, so a clip is either zero-padded (``pad``, what
``audiofcn tag`` does) or repeated to fill the chunk (``loop``): both are reported.

Also lists the top tags of the songs in ``librosa/`` and of the Philharmonia ``*phrase*``
recordings (no labels: for reading).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from audiofcn.io import atomic_output
from audiofcn.tagging import load_tagger, predict_track, tag_files

VOCAL_TAGS = ("female vocalists", "male vocalists", "female vocalist")


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    return float(roc_auc_score(y, np.r_[pos, neg]))


def fill(audio: torch.Tensor, length: int, mode: str) -> torch.Tensor:
    """Repeat a clip shorter than one chunk until it fills it (``loop``), or leave it to the
    tagger's zero padding (``pad``)."""
    if mode == "loop" and audio.shape[-1] < length:
        reps = -(-length // audio.shape[-1])
        return audio.repeat(reps)[:length]
    return audio


@torch.inference_mode()
def mir1k_check(model: torch.nn.Module, wav_dir: Path, limit: int | None,
                levels: tuple[str, ...] = ("rms_matched", "raw"),
                progress: Path | None = None) -> dict:
    """AUCs over the clips of ``wav_dir``; with ``progress``, the AUCs so far are written
    there every 40 clips (a long run on a shared machine can be read before it ends)."""
    labels = list(model.config.labels)
    sr, length = model.config.sample_rate, model.config.input_length
    files = sorted(wav_dir.glob("*.flac")) + sorted(wav_dir.glob("*.wav"))
    random.Random(0).shuffle(files)  # singers interleaved, so partial results are fair
    files = files[:limit] if limit else files
    scores: dict[str, dict[str, list[np.ndarray]]] = {}
    for n_done, f in enumerate(files, 1):
        x, file_sr = sf.read(str(f), dtype="float32", always_2d=True)
        if x.shape[1] != 2:
            raise SystemExit(f"{f}: expected stereo (left accompaniment, right voice)")
        versions = {"mixture": x[:, 0] + x[:, 1], "accompaniment": x[:, 0]}
        rms = {k: float(np.sqrt(np.mean(v ** 2)) + 1e-12) for k, v in versions.items()}
        for level in levels:
            for name, v in versions.items():
                if level == "rms_matched":  # both at the mixture's RMS
                    v = v * (rms["mixture"] / rms[name])
                a = torch.from_numpy(soxr.resample(v, file_sr, sr, "HQ").astype(np.float32))
                for mode in ("pad", "loop") if level == "rms_matched" else ("pad",):
                    p = predict_track(model, fill(a, length, mode)).numpy()
                    scores.setdefault(f"{level}/{mode}", {}).setdefault(name, []).append(p)
        if progress and (n_done % 40 == 0 or n_done == len(files)):
            with atomic_output(progress) as tmp:
                tmp.write_text(json.dumps(mir1k_aucs(scores, labels, n_done), indent=2))
    return mir1k_aucs(scores, labels, len(files))


def mir1k_aucs(scores: dict[str, dict[str, list[np.ndarray]]], labels: list[str],
               n_clips: int) -> dict:
    out: dict = {"clips": n_clips}
    for key, s in scores.items():
        mix, acc = np.stack(s["mixture"]), np.stack(s["accompaniment"])
        r = {}
        for tag in (*VOCAL_TAGS, "instrumental"):
            if tag not in labels:
                continue
            i = labels.index(tag)
            r[tag] = roc_auc(acc[:, i], mix[:, i]) if tag == "instrumental" else \
                roc_auc(mix[:, i], acc[:, i])
        idx = [labels.index(t) for t in VOCAL_TAGS if t in labels]
        if idx:
            r["any vocal tag (sum)"] = roc_auc(mix[:, idx].sum(1), acc[:, idx].sum(1))
            # Paired: the same music with and without the voice, clip by clip.
            r["paired: vocal sum higher on the mixture"] = float(
                (mix[:, idx].sum(1) > acc[:, idx].sum(1)).mean())
        if "instrumental" in labels:
            i = labels.index("instrumental")
            r["paired: instrumental higher on the accompaniment"] = float(
                (acc[:, i] > mix[:, i]).mean())
        r["mean instrumental score"] = {"mixture": float(mix[:, labels.index("instrumental")]
                                                         .mean()),
                                        "accompaniment": float(acc[:, labels.index(
                                            "instrumental")].mean())} \
            if "instrumental" in labels else {}
        out[key] = r
    return out


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
    ap.add_argument("--model", default="msd50_crnn")
    ap.add_argument("--out", type=Path, required=True, help="report .json")
    ap.add_argument("--limit", type=int, help="MIR-1K clips to use (default all)")
    ap.add_argument("--parts", default="mir1k,librosa,philharmonia")
    ap.add_argument("--levels", default="rms_matched,raw",
                    help="rms_matched (both versions at the mixture's RMS) and/or raw")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load_tagger(args.model)
    report: dict = {"model": args.model}
    parts = args.parts.split(",")
    if "mir1k" in parts:
        report["mir1k"] = mir1k_check(model, args.data_root / "mir1k" / "Wavfile", args.limit,
                                      tuple(args.levels.split(",")),
                                      args.out.with_suffix(".partial.json"))
    if "librosa" in parts:
        songs = [p for p in sorted((args.data_root / "librosa").glob("*.ogg"))
                 if p.with_suffix(".txt").exists() and "librispeech" not in
                 p.with_suffix(".txt").read_text(errors="ignore").lower()]
        report["librosa"] = top_tags(model, songs)
    if "philharmonia" in parts:
        report["philharmonia_phrases"] = top_tags(
            model, sorted((args.data_root / "philharmonia").glob("*phrase*.mp3")), 3)
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
