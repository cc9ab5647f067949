"""Evaluate echo cancellers on real recordings (every system in one run).

    python recipes/aec/evaluate_real.py --dtln ~/data/dtln_aec/audio_samples \
        --kalman ~/data/kalman_aec/test_audio --data-root ../shared/data --out runs/aec/real

Recordings (all 16 kHz except pyaec's 8 kHz pair, resampled to 16 kHz):

* ``--dtln``: a copy of breizhn/DTLN-aec ``audio_samples/`` (AEC-challenge blind test: one
  far-end single-talk, one near-end single-talk and one double-talk clip, ``*_mic.wav`` and
  loopback ``*_lpb.wav``);
* ``--kalman``: a copy of changxuding/Subband_Kalman_AEC ``test_audio/``: two AEC-challenge
  double-talk clips (one with movement), two phone recordings (``real_iphone``,
  ``real_linear``: ``*_near.wav`` is the microphone) and two ReSpeaker recordings of music
  playback (``echo.wav`` microphone, ``far.wav`` reference; no near-end talker);
* ``--data-root``: ``speech/pyaec`` (x.wav far end, d.wav microphone, male.wav the near-end
  talker who joins after 6.4 s; the one pair here with a clean double-talk reference).

None of the AEC-challenge or phone recordings has a clean near-end, so double talk is scored
without a reference. Frames are labelled from the reference alone: "far end active" where the
loopback's 10 ms power exceeds ``--ref-active-db`` (dBFS), widened by 300 ms for the echo tail;
the rest is "far end silent" (whatever the microphone has there is near end and noise).
Reported per clip and system:

* ``erle``: 10 log10(sum mic^2 / sum out^2) over the whole clip (far-end single talk);
* ``erle_active``: the same over far-end-active frames (in double talk this mixes echo removal
  with near-end loss: an upper bound on echo removal);
* ``loss_silent``: the same over far-end-silent frames (near-end damage; 0 dB is untouched);
* ``pesq_silent``: PESQ-WB of the output against the microphone over the far-end-silent frames
  (near end passes untouched: 4.64 is identical), when they last at least 3 s;
* near-end single talk: ``pesq_mic`` (PESQ-WB against the microphone) and ``loss`` (dB);
* the pyaec pair: ERLE before the near-end onset, PESQ-WB / STOI / SI-SDR after it against the
  located near-end talker (as ``evaluate.py`` does).

Writes ``report.json`` and ``table.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiofcn.aec.baselines import SPEEXDSP_MISSING, pbfdaf, speexdsp_available, speexdsp_cancel
from audiofcn.aec.linear import kalman_cancel
from audiofcn.aec.metrics import erle, pesq_wb, si_sdr, stoi
from audiofcn.io import load_audio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import System, network, real_pair  # noqa: E402
from prepare import DEFAULT_ROOT  # noqa: E402

SR = 16000
SHIPPED = Path(__file__).resolve().parents[2] / "src/audiofcn/pretrained/aec_default.safetensors"


def clips(dtln: Path | None, kalman: Path | None) -> list[dict]:
    """``{"name", "kind", "mic", "ref"}`` for every recording found under the roots."""
    out: list[dict] = []
    if dtln is not None:
        for mic in sorted(dtln.glob("*_mic.wav")):
            stem = mic.name[:-len("_mic.wav")]
            kind = ("far_single" if "farend_singletalk" in stem else "near_single"
                    if "nearend_singletalk" in stem else "double_talk")
            out.append({"name": f"dtln/{stem}", "kind": kind, "mic": mic,
                        "ref": mic.with_name(f"{stem}_lpb.wav")})
    if kalman is not None:
        for mic in sorted((kalman / "AEC_Challenge").rglob("*_mic.wav")):
            out.append({"name": f"kalman/{mic.name[:-8]}", "kind": "double_talk", "mic": mic,
                        "ref": mic.with_name(mic.name.replace("_mic.wav", "_lpb.wav"))})
        for name in ("real_iphone", "real_linear"):
            d = kalman / "AecSamples" / name
            if d.exists():
                out.append({"name": f"kalman/{name}", "kind": "double_talk",
                            "mic": d / f"{name}_near.wav", "ref": d / f"{name}_far.wav"})
        for d in sorted((kalman / "aec_respeaker_6mic").glob("*")):
            if (d / "echo.wav").exists():
                out.append({"name": f"kalman/respeaker_{d.name}", "kind": "far_single_music",
                            "mic": d / "echo.wav", "ref": d / "far.wav"})
    return out


def load_pair(c: dict) -> tuple[np.ndarray, np.ndarray]:
    mic = load_audio(c["mic"], sr=SR)[0][0].numpy()
    ref = load_audio(c["ref"], sr=SR)[0][0].numpy()
    n = min(len(mic), len(ref))
    return mic[:n], ref[:n]


def far_active(ref: np.ndarray, threshold_db: float, tail_s: float = 0.3) -> np.ndarray:
    """Per-sample mask: the reference's 10 ms power above ``threshold_db`` dBFS, widened
    forward by ``tail_s`` (the echo outlasts the sound that made it)."""
    hop = SR // 100
    frames = -(-len(ref) // hop)
    p = np.pad(ref, (0, frames * hop - len(ref))).reshape(frames, hop)
    on = 10 * np.log10(np.mean(p.astype(np.float64) ** 2, axis=1) + 1e-20) > threshold_db
    widen = int(round(tail_s * 100))
    grown = np.convolve(on.astype(float), np.ones(widen + 1))[:frames] > 0
    return np.repeat(grown, hop)[:len(ref)]


def _db(num: np.ndarray, den: np.ndarray) -> float:
    if len(num) == 0:
        return float("nan")
    return erle(num, den)


def score(kind: str, mic: np.ndarray, out: np.ndarray, active: np.ndarray) -> dict:
    d: dict[str, float] = {"erle": erle(mic, out), "erle_active": _db(mic[active], out[active]),
                           "loss_silent": _db(mic[~active], out[~active])}
    if kind == "near_single":
        d["pesq_mic"] = pesq_wb(mic, out, SR)
        d["loss"] = erle(mic, out)
    elif (~active).sum() >= 3 * SR:
        d["pesq_silent"] = pesq_wb(mic[~active], out[~active], SR)
    return d


def systems(models: list[Path]) -> dict[str, System]:
    out: dict[str, System] = {"mic (unprocessed)": lambda m, r: m}
    if speexdsp_available():
        out["speexdsp AEC (linear)"] = lambda m, r: speexdsp_cancel(m, r, preprocess=False)
        out["speexdsp AEC+RES+NS"] = lambda m, r: speexdsp_cancel(m, r, preprocess=True)
    else:
        print(f"skipping speexdsp: {SPEEXDSP_MISSING}", file=sys.stderr)
    out["pbfdaf (ours, old)"] = pbfdaf
    out["kalman linear (ours, aec.linear)"] = lambda m, r: kalman_cancel(m, r)[0]
    for model in models:
        out["network (shipped aec_default)" if model == SHIPPED else f"network {model}"] = \
            network(model)
    return out


METRICS = {"far_single": [("erle", "ERLE dB")],
           "far_single_music": [("erle", "ERLE dB")],
           "near_single": [("pesq_mic", "PESQ-WB vs mic"), ("loss", "near-end loss dB")],
           "double_talk": [("erle_active", "ERLE far-active dB"),
                           ("loss_silent", "loss far-silent dB"),
                           ("pesq_silent", "PESQ-WB vs mic, far-silent")]}


def table(report: dict) -> str:
    """One row per recording and metric, one column per system."""
    names = report["systems"]
    lines = ["| recording | kind | metric | " + " | ".join(names) + " |",
             "|" + "---|" * (len(names) + 3)]
    for clip, c in report["clips"].items():
        for key, title in METRICS[c["kind"]]:
            vals = [c["scores"].get(n, {}).get(key) for n in names]
            if all(v is None for v in vals):
                continue
            cells = ["" if v is None else f"{v:.2f}" for v in vals]
            lines.append(f"| {clip} | {c['kind']} | {title} | " + " | ".join(cells) + " |")
    for key, title in (("erle", "FE ERLE dB (before onset)"), ("pesq", "DT PESQ-WB"),
                       ("stoi", "DT STOI"), ("si_sdr", "DT SI-SDR dB")):
        if report.get("pyaec"):
            cells = [f"{report['pyaec'][n][key]:.2f}" for n in names]
            lines.append(f"| pyaec x/d (8 kHz) | far single, then double talk | {title} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="evaluate echo cancellers on real recordings")
    ap.add_argument("--dtln", type=Path, help="copy of breizhn/DTLN-aec audio_samples/")
    ap.add_argument("--kalman", type=Path,
                    help="copy of changxuding/Subband_Kalman_AEC test_audio/")
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("AUDIOFCN_DATA_ROOT", DEFAULT_ROOT)))
    ap.add_argument("--model", type=Path, action="append",
                    help="network checkpoint (repeat for several; default: the shipped one)")
    ap.add_argument("--no-model", action="store_true", help="skip the network")
    ap.add_argument("--ref-active-db", type=float, default=-50.0)
    ap.add_argument("--out", type=Path, default=Path("runs/aec/real"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    found = clips(args.dtln, args.kalman)
    if not found and not (args.data_root / "speech/pyaec/d.wav").exists():
        print("evaluate_real: no recordings found (give --dtln and/or --kalman)", file=sys.stderr)
        return 1
    runners = systems([] if args.no_model else (args.model or [SHIPPED]))
    seconds = dict.fromkeys(runners, 0.0)
    report: dict = {"systems": list(runners), "clips": {}, "ref_active_db": args.ref_active_db}
    for c in found:
        mic, ref = load_pair(c)
        active = far_active(ref, args.ref_active_db)
        entry = {"kind": c["kind"], "seconds": len(mic) / SR,
                 "far_active_fraction": float(active.mean()), "scores": {}}
        for name, fn in runners.items():
            t0 = time.process_time()
            out = np.asarray(fn(mic, ref), np.float32)[:len(mic)]
            seconds[name] += time.process_time() - t0
            entry["scores"][name] = score(c["kind"], mic, out, active)
        report["clips"][c["name"]] = entry
        print(c["name"], c["kind"], {k: round(v.get("erle_active", v["erle"]), 1)
                                     for k, v in entry["scores"].items()}, flush=True)
    pair = real_pair(args.data_root, SR)
    if pair is not None:
        on, report["pyaec"] = pair["onset"], {}
        for name, fn in runners.items():
            out = np.asarray(fn(pair["mic"], pair["ref"]), np.float32)
            report["pyaec"][name] = {"erle": erle(pair["mic"][:on], out[:on]),
                                     "pesq": pesq_wb(pair["near"][on:], out[on:], SR),
                                     "stoi": stoi(pair["near"][on:], out[on:], SR),
                                     "si_sdr": si_sdr(pair["near"][on:], out[on:])}
    report["cpu_seconds"] = seconds
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    md = table(report)
    (args.out / "table.md").write_text(md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
