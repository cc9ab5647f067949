"""Diagnose double-talk quality on the held-out simulated test set.

    python recipes/aec/diagnose.py --model runs/aec/finetune_dt/best.safetensors \
        --data runs/aec/data --out runs/aec/diagnose

Per double-talk / near-end single-talk clip: (a) does ``mic == near + echo + noise`` hold as
stored, and is the near-end inside the microphone time-aligned with the target (lag of the
cross-correlation peak of ``mic - echo - noise`` with ``near``); PESQ-WB against the clean
near-end of (b) the network's echo-stage output ``Y1`` and its final output, and (c) oracles:
the microphone with the echo removed (``near + noise``), the ideal real-valued (Wiener) mask
from the true near/echo/noise powers (the ceiling of a magnitude-only mask), and the clean
near-end through the network's masks (how much the masks alone damage the talker); (d) how
many dB the masks take off the near-end, the echo and the noise (the masks act linearly), over
the clip and over the frames where the near-end talker is active; SER/SNR of each clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from audiofcn.aec.metrics import pesq_wb, si_sdr
from audiofcn.aec.simulation import AECSimConfig, simulate_example
from audiofcn.io import load_audio, read_manifest
from audiofcn.models import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import (  # noqa: E402
    DEFAULT_ROOT,
    TEST_FAR,
    TEST_NEAR,
    build_manifests,
    load_pool,
)


def lag(a: np.ndarray, b: np.ndarray, max_lag: int = 400) -> int:
    """Lag of the cross-correlation peak of ``a`` against ``b`` (0: aligned)."""
    c = [float(np.dot(a[max(0, k):len(a) + min(0, k)], b[max(0, -k):len(b) - max(0, k)]))
         for k in range(-max_lag, max_lag + 1)]
    return int(np.argmax(c)) - max_lag


def band_wiener(pw: dict[str, torch.Tensor], width: int) -> torch.Tensor:
    """Wiener gain ``P_near / (P_near + P_echo + P_noise)`` from powers summed over bands of
    ``width`` adjacent bins, repeated to every bin of the band; ``(1, F, T)``."""
    def band(x: torch.Tensor) -> torch.Tensor:
        f = x.shape[1]
        pooled = torch.nn.functional.avg_pool1d(x.transpose(1, 2), width, width,
                                                ceil_mode=True)
        return pooled.repeat_interleave(width, dim=-1)[..., :f].transpose(1, 2)

    a, b, c = band(pw["near"]), band(pw["echo"]), band(pw["noise"])
    return a / (a + b + c + 1e-12)


def sweep(root: Path, data: Path, n: int, model: torch.nn.Module) -> dict[str, dict]:
    """Oracle PESQ-WB per SER bucket on ``n`` extra double-talk clips simulated like the test
    set (test talkers, noises and RIRs; other seeds): how hard the SER/SNR range is by itself,
    with more clips than the fixed test set's eight."""
    speech = build_manifests(root)["speech"]
    near = load_pool(root, speech, "test", TEST_NEAR)
    far = load_pool(root, speech, "test", TEST_FAR)
    noise = load_pool(root, build_manifests(root)["noise"], "test")
    bank = np.load(data / "rir_bank_test.npz")
    rirs = [bank[k] for k in bank.files]
    cfg = AECSimConfig(duration=6.0, nonlinear_prob=0.8)
    buckets: dict[str, dict[str, list[float]]] = {}
    for i in range(n):
        ex = simulate_example(950_000 + i, near, far, noise, rirs, cfg, "double_talk",
                              simulate_rooms=False)
        with torch.inference_mode():
            spec = {k: model.stft(torch.from_numpy(getattr(ex, k))[None])
                    for k in ("mic", "near", "echo", "noise")}
            pw = {k: v.abs().square() for k, v in spec.items()}
            w = pw["near"] / (pw["near"] + pw["echo"] + pw["noise"] + 1e-12)
            wiener = model.istft(w * spec["mic"], length=len(ex.mic))[0].numpy()
        key = "SER < -5" if ex.ser_db < -5 else ("SER -5..+5" if ex.ser_db < 5 else "SER > +5")
        b = buckets.setdefault(key, {"mic": [], "near_noise": [], "wiener": [], "snr_db": []})
        b["mic"].append(pesq_wb(ex.near, ex.mic))
        b["near_noise"].append(pesq_wb(ex.near, ex.near + ex.noise))
        b["wiener"].append(pesq_wb(ex.near, wiener))
        b["snr_db"].append(ex.snr_db)
    return {k: {"n": len(v["mic"]), **{m: float(np.nanmean(x)) for m, x in v.items()}}
            for k, v in sorted(buckets.items())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/aec/diagnose"))
    ap.add_argument("--sweep", type=int, default=0,
                    help="also: oracles per SER bucket on this many extra simulated clips")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model = load_model(args.model).eval()
    if args.sweep:
        res = sweep(args.data_root, args.data, args.sweep, model)
        print(json.dumps(res, indent=1))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "sweep.json").write_text(json.dumps(res, indent=1))
    rows = []
    for rec in read_manifest(args.data / "test.jsonl"):
        if rec.label not in ("double_talk", "near_single"):
            continue
        s = {k: load_audio(args.data / v)[0][0].numpy() for k, v in rec.roles.items()}
        resid = float(np.max(np.abs(s["mic"] - s["near"] - s["echo"] - s["noise"])))
        with torch.inference_mode():
            t = {k: torch.from_numpy(s[k])[None] for k in ("mic", "ref", "near")}
            out = model(model.stft(t["mic"]), model.stft(t["ref"]))
            n = t["mic"].shape[-1]
            stage = model.istft(out["near_noisy"], length=n)[0].numpy()
            final = model.istft(out["near"], length=n)[0].numpy()
            # the clean near-end through the same masks: the damage the masks do to it
            masks = out["echo_mask"] * out.get("noise_mask", 1.0)
            near_masked = model.istft(masks * model.stft(t["near"]), length=n)[0].numpy()
            # the masks are applied linearly, so output = masked near + masked echo + masked
            # noise: how much of each the network lets through, over the clip and over the
            # frames where the near-end talker is active (double talk proper)
            parts = {k: (model.stft(torch.from_numpy(s[k])[None]),
                         masks * model.stft(torch.from_numpy(s[k])[None]))
                     for k in ("near", "echo", "noise")}
            # ceiling of a real-valued mask: the Wiener gain from the true component powers
            pw = {k: x.abs().square() for k, (x, _) in parts.items()}
            wiener = pw["near"] / (pw["near"] + pw["echo"] + pw["noise"] + 1e-12)
            oracle_wiener = model.istft(wiener * model.stft(t["mic"]), length=n)[0].numpy()
            # the same ideal gain with coarser frequency resolution (powers summed over bands
            # of 4 / 16 bins, as the encoder's two 4x strides leave 41 / 11 bands)
            banded = {w: model.istft(band_wiener(pw, w) * model.stft(t["mic"]),
                                     length=n)[0].numpy() for w in (4, 16)}
            frame_p = parts["near"][0].abs().square().sum(1)[0]
            active = frame_p > 1e-3 * frame_p.max()
        near = s["near"]
        row = {"clip": rec.path, "scenario": rec.label, "ser_db": rec.meta["ser_db"],
               "snr_db": rec.meta["snr_db"], "mix_residual": resid,
               "near_lag": lag(s["mic"] - s["echo"] - s["noise"], near),
               "pesq_mic": pesq_wb(near, s["mic"]),
               "pesq_oracle_near_noise": pesq_wb(near, near + s["noise"]),
               "pesq_oracle_wiener": pesq_wb(near, oracle_wiener),
               **{f"pesq_oracle_wiener_{w}bin_bands": pesq_wb(near, y)
                  for w, y in banded.items()},
               "pesq_stage": pesq_wb(near, stage), "pesq_final": pesq_wb(near, final),
               "pesq_near_through_masks": pesq_wb(near, near_masked),
               "sisdr_final": si_sdr(near, final),
               "sisdr_near_through_masks": si_sdr(near, near_masked)}
        for k, (x, y) in parts.items():  # attenuation (dB) of each component by the masks
            px, py = x.abs().square()[0], y.abs().square()[0]
            if float(px.sum()) > 0:
                row[f"atten_{k}_db"] = 10 * float(torch.log10(px.sum() / py.sum()))
                row[f"atten_{k}_near_active_db"] = 10 * float(
                    torch.log10(px[:, active].sum() / py[:, active].sum()))
        rows.append(row)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                          for k, v in row.items()}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for sc in ("double_talk", "near_single"):
        sel = [r for r in rows if r["scenario"] == sc]
        summary[sc] = {k: float(np.nanmean([r[k] for r in sel])) for k in sel[0]
                       if k.startswith(("pesq", "sisdr", "atten"))}
    print(json.dumps(summary, indent=1))
    (args.out / "diagnose.json").write_text(json.dumps({"summary": summary, "rows": rows},
                                                      indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
