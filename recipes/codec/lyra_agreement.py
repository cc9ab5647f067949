"""How closely the Lyra port reproduces the TFLite original, per back-end and arithmetic.

    python recipes/codec/lyra_agreement.py --lyra-root LYRA [--speechocean DIR --utts 20]

LYRA = a copy of google/lyra (needs ``pip install 'audiofcn[convert]'`` for ai-edge-litert).
Signals: a test-made voiced tone with noise (1 s), Lyra's ``sample1_16kHz.wav`` and
``sample2_16kHz.wav``, and optionally ``--utts`` utterances drawn (seed 0) from the ``test/``
speakers of a copy of speechocean762. For each TFLite back-end (its reference kernels, its
optimized built-in kernels, XNNPACK as Lyra's C++ runs it) and each port arithmetic
(``tflite``: TFLite's reference int8 kernels; ``xnnpack``: XNNPACK's int8 kernels; ``float``:
the training path's rounding) it prints the % of frames
whose codes are all identical at 3.2 / 6 / 9.2 kbps, the latents' SNR and max abs difference,
and the max abs difference of the audio decoded from the back-end's own 6 kbps codes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_lyra import tflite_reference  # noqa: E402

from audiofcn.codec import load_codec  # noqa: E402
from audiofcn.nn.quantized_causal import int8_arithmetic  # noqa: E402

KBPS = {3.2: 16, 6: 30, 9.2: 46}


def test_signal(seconds: float = 1.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * np.cumsum(140 + 30 * np.sin(2 * np.pi * 3 * t)) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 20)) * (0.5 + 0.5 * np.sin(np.pi * t))
    x = 0.2 * voice / np.abs(voice).max() + np.random.default_rng(0).standard_normal(t.size) * 0.01
    return x[: len(x) // 320 * 320].astype(np.float32)


def signals(lyra: Path, speechocean: Path | None, utts: int) -> dict[str, np.ndarray]:
    out = {"test-made": test_signal()}
    for name in ("sample1_16kHz", "sample2_16kHz"):
        x, _ = sf.read(str(lyra / "lyra" / "testdata" / f"{name}.wav"), dtype="float32")
        out[name] = x[: len(x) // 320 * 320]
    if speechocean is not None and utts:
        lines = [ln.split() for ln in (speechocean / "test" / "wav.scp").read_text().splitlines()
                 if ln.strip()]
        for i in np.random.default_rng(0).choice(len(lines), utts, replace=False):
            x, sr = sf.read(str(speechocean / lines[i][1]), dtype="float32")
            if sr != 16000:
                raise ValueError(f"{lines[i][1]}: expected 16 kHz")
            out[f"speechocean {lines[i][0]}"] = x[: len(x) // 320 * 320]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lyra-root", required=True, type=Path)
    ap.add_argument("--speechocean", type=Path, help="copy of jimbozhang/speechocean762")
    ap.add_argument("--utts", type=int, default=0)
    ap.add_argument("--kernels", default="reference,builtin,xnnpack")
    ap.add_argument("--arithmetics", default="tflite,xnnpack,float")
    args = ap.parse_args(argv)
    root = args.lyra_root.expanduser()
    coeffs = root / "lyra" / "model_coeffs"
    model = load_codec()
    sigs = signals(root, args.speechocean.expanduser() if args.speechocean else None, args.utts)
    print("| signal | TFLite back-end | port arithmetic | frames identical 3.2 / 6 / 9.2 kbps "
          "| latents SNR (dB) | latents max abs diff | decoded max abs diff (6 kbps) |")
    print("|---|---|---|---|---:|---:|---:|")
    totals: dict[tuple[str, str], list[int]] = {}
    for name, x in sigs.items():
        audio = torch.from_numpy(x)[None, None]
        for kernels in args.kernels.split(","):
            refs = {n_q: tflite_reference(coeffs, x, n_q, kernels=kernels)
                    for n_q in KBPS.values()}
            lat_ref, codes6 = refs[30]["latents"], refs[30]["codes"]
            for arithmetic in args.arithmetics.split(","):
                with torch.no_grad(), int8_arithmetic(arithmetic):
                    lat = model.embed(audio)[0].T.numpy()
                same = []
                for n_q, ref in refs.items():
                    codes = model.encode(audio, n_q, arithmetic=arithmetic)[0].T.numpy()
                    same.append((codes == ref["codes"]).all(1))
                tot = totals.setdefault((kernels, arithmetic), [0, 0, 0, 0])
                for i, s in enumerate(same):
                    tot[i] += int(s.sum())
                tot[3] += len(same[0])
                dec = model.decode(torch.from_numpy(codes6.T.astype(np.int64))[None],
                                   arithmetic=arithmetic)[0, 0].numpy()
                err = float(np.abs(lat - lat_ref).max())
                noise = float(((lat - lat_ref) ** 2).sum())
                snr = "exact" if noise == 0 else \
                    f"{10 * np.log10(float((lat_ref ** 2).sum()) / noise):.1f}"
                print(f"| {name} | {kernels} | {arithmetic} | "
                      + " / ".join(f"{100 * s.mean():.1f} %" for s in same)
                      + f" | {snr} | {err:.2g} | {np.abs(dec - refs[30]['audio']).max():.2g} |",
                      flush=True)
    print("\n| all signals | TFLite back-end | port arithmetic "
          "| frames identical 3.2 / 6 / 9.2 kbps |\n|---|---|---|---|")
    for (kernels, arithmetic), t in totals.items():
        print(f"| {len(sigs)} signals, {t[3]} frames | {kernels} | {arithmetic} | "
              + " / ".join(f"{100 * t[i] / t[3]:.1f} %" for i in range(3)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
