"""Port Choi's MSD-50 taggers (keunwoochoi/music-auto_tagging-keras, MIT) and verify them.

    python recipes/tagging/convert_choi.py --root ~/data/choi --out-dir runs/choi \
        [--fixture tests/models/fixtures/choi_msd50.safetensors]

``--root`` is a copy of the repository (``data/*.h5``, ``data/*.npy``, ``data/*.mp3``,
``README.md``). Writes ``tagger_msd50_crnn.safetensors``, ``tagger_msd50_fcn.safetensors`` and
``report.json`` to ``--out-dir`` (copy the weights to ``src/audiofcn/pretrained/``).

Checks, all in ``report.json``:
1. each model from its Theano file and from its TensorFlow file (kernels flipped vs not) on
   the four precomputed mel-spectrograms: max abs difference of the probabilities;
2. the CRNN on the precomputed mel-spectrograms vs the README's reference top-10 (theano);
3. the CRNN from the MP3s through audiofcn's frontend (``choi_keras_logmel``): the log-mel
   gap to the ``.npy`` files and the probability gap to the reference.
``--fixture`` stores one clip's log-mel (float16) with both ported models' outputs on it, the
regression fixture that the unit tests check the shipped weights against.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from audiofcn.frontend import LogMelFrontend, choi_keras_logmel
from audiofcn.io import atomic_output
from audiofcn.io.stream import read_mono_blocks
from audiofcn.tagging.keras_port import MSD50_TAGS, load_choi_crnn, load_choi_fcn

CLIPS = ("cute", "actionable", "dubstep", "thejazzpiano")
SR, N_FIT = 12000, int(29.12 * 12000)
LICENCE_NOTE = ("MIT License, Copyright (c) 2016 Keunwoo Choi; weights of "
                "keunwoochoi/music-auto_tagging-keras, converted by audiofcn")


def readme_reference(readme: Path) -> dict[str, list[tuple[str, float]]]:
    """The README's "Result" section: clip -> reference top-10 (tag, probability)."""
    text = readme.read_text(encoding="utf-8")
    out = {}
    for m in re.finditer(r"data/bensound-(\w+)\.mp3\n(\[.*\])\n(\[.*\])", text):
        pairs = ast.literal_eval(m.group(2)) + ast.literal_eval(m.group(3))
        out[m.group(1)] = [(t, float(s)) for t, s in pairs]
    if set(out) != set(CLIPS):
        raise SystemExit(f"{readme}: reference results for {sorted(out)}, expected {CLIPS}")
    return out


def center_crop(audio: torch.Tensor, shift: int = 0) -> torch.Tensor:
    """``audio_processor.py``: zero-pad or take the centre 29.12 s (moved by ``shift``)."""
    n = audio.shape[-1]
    if n < N_FIT:
        return torch.nn.functional.pad(audio, (0, N_FIT - n))
    start = min(max((n - N_FIT) // 2 + shift, 0), n - N_FIT)
    return audio[start:start + N_FIT]


def best_shift(frontend: LogMelFrontend, audio: torch.Tensor, target: torch.Tensor,
               span: int = 600, step: int = 4) -> tuple[int, float]:
    """The crop offset (samples at 12 kHz) whose log-mel is closest (mean abs dB) to the
    ``.npy``: MP3 decoders differ in the leading/trailing samples they keep, which moves
    ``audio_processor.py``'s centre crop."""
    errs = [(float((frontend(center_crop(audio, s)) - target).abs().mean()), s)
            for s in range(-span, span + 1, step)]
    err, shift = min(errs)
    return shift, err


def compare(probs: np.ndarray, ref: dict[str, list[tuple[str, float]]]) -> dict:
    """Per clip: does our top-10 equal the reference's (as a set, and in order), and the max
    abs probability difference over the reference's 10 tags."""
    rows, worst = {}, 0.0
    for k, clip in enumerate(CLIPS):
        order = np.argsort(-probs[k])[:10]
        ours = [MSD50_TAGS[i] for i in order]
        diff = max(abs(float(probs[k, MSD50_TAGS.index(t)]) - s) for t, s in ref[clip])
        worst = max(worst, diff)
        rows[clip] = {"top10": [(t, round(float(probs[k, MSD50_TAGS.index(t)]), 4))
                                for t in ours],
                      "same_top10_set": set(ours) == {t for t, _ in ref[clip]},
                      "max_abs_diff": round(diff, 5)}
    return {"clips": rows, "max_abs_diff": round(worst, 5),
            "all_top10_match": all(r["same_top10_set"] for r in rows.values())}


@torch.inference_mode()
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--fixture", type=Path, help="write the unit-test fixture here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = args.root / "data"
    if not (data / "music_tagger_crnn_weights_theano.h5").exists():
        print(f"error: {data} has no music_tagger_*_weights_*.h5", file=sys.stderr)
        return 1
    ref = readme_reference(args.root / "README.md")
    mels = torch.from_numpy(np.concatenate(
        [np.load(data / f"bensound-{c}.npy") for c in CLIPS])[:, 0].astype(np.float32))
    report: dict = {"source": "keunwoochoi/music-auto_tagging-keras", "licence": LICENCE_NOTE}
    models, probs = {}, {}
    for name, loader, stem in (("crnn", load_choi_crnn, "crnn"), ("fcn", load_choi_fcn, "cnn")):
        for backend in ("theano", "tensorflow"):
            m = loader(data / f"music_tagger_{stem}_weights_{backend}.h5", backend)
            models[name, backend] = m
            probs[name, backend] = torch.sigmoid(m.classify_logmel(mels)).numpy()
        report[f"{name}_theano_vs_tensorflow_max_abs"] = float(
            np.abs(probs[name, "theano"] - probs[name, "tensorflow"]).max())
    report["crnn_npy_vs_readme"] = compare(probs["crnn", "theano"], ref)
    report["fcn_npy_top5"] = {c: [(MSD50_TAGS[i], round(float(probs["fcn", "theano"][k, i]), 3))
                                  for i in np.argsort(-probs["fcn", "theano"][k])[:5]]
                              for k, c in enumerate(CLIPS)}

    # The MP3s through audiofcn's own decoder, resampler and frontend.
    frontend = LogMelFrontend(choi_keras_logmel())
    # Decoded and resampled exactly as `audiofcn tag` does (soundfile + streaming soxr).
    audio = [torch.cat(list(read_mono_blocks(data / f"bensound-{c}.mp3", SR))) for c in CLIPS]
    ours = torch.stack([frontend(center_crop(a)) for a in audio])
    gap = (ours - mels).abs()
    report["frontend_vs_npy_db"] = {"mean_abs": float(gap.mean()), "max_abs": float(gap.max()),
                                    "median_abs": float(gap.median())}
    shifts = [best_shift(frontend, a, mels[k]) for k, a in enumerate(audio)]
    aligned = torch.stack([frontend(center_crop(a, s))
                           for a, (s, _) in zip(audio, shifts, strict=True)])
    gap = (aligned - mels).abs()
    report["frontend_vs_npy_db_aligned"] = {
        "shift_samples_12k": [s for s, _ in shifts], "mean_abs": float(gap.mean()),
        "max_abs": float(gap.max()), "median_abs": float(gap.median())}
    crnn = models["crnn", "theano"]
    report["crnn_mp3_vs_readme"] = compare(torch.sigmoid(crnn.classify_logmel(ours)).numpy(), ref)
    report["crnn_mp3_aligned_vs_readme"] = compare(
        torch.sigmoid(crnn.classify_logmel(aligned)).numpy(), ref)
    fcn_mp3 = torch.sigmoid(models["fcn", "theano"].classify_logmel(ours)).numpy()
    report["fcn_mp3_vs_fcn_npy_max_abs"] = float(np.abs(fcn_mp3 - probs["fcn", "theano"]).max())

    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in ("crnn", "fcn"):
        extra = {"source": report["source"], "licence": LICENCE_NOTE,
                 "converted_from": f"music_tagger_{'cnn' if name == 'fcn' else 'crnn'}"
                                   "_weights_theano.h5",
                 "theano_vs_tensorflow_max_abs": report[f"{name}_theano_vs_tensorflow_max_abs"]}
        models[name, "theano"].save_pretrained(args.out_dir / f"tagger_msd50_{name}.safetensors",
                                               extra=extra)
    if args.fixture:
        from safetensors.torch import save_file

        x = mels[:1].half()  # bensound-cute, 256 kB in float16
        xf = x.float()
        tensors = {"logmel": x.contiguous(),
                   "crnn_probs": torch.sigmoid(crnn.classify_logmel(xf))[0].contiguous(),
                   "fcn_probs": torch.sigmoid(models["fcn", "theano"].classify_logmel(xf))[0]
                   .contiguous()}
        with atomic_output(args.fixture, suffix=".safetensors") as tmp:
            save_file(tensors, str(tmp), metadata={"clip": "bensound-cute.npy",
                                                   "source": report["source"],
                                                   "licence": LICENCE_NOTE})
    with atomic_output(args.out_dir / "report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if not isinstance(v, dict)}, indent=2))
    for key in ("crnn_npy_vs_readme", "crnn_mp3_vs_readme", "crnn_mp3_aligned_vs_readme"):
        r = report[key]
        print(f"{key}: max |p - ref| {r['max_abs_diff']:.4f}, "
              f"top-10 sets match: {r['all_top10_match']}")
    print(f"frontend vs npy (dB): {report['frontend_vs_npy_db']}")
    print(f"aligned crop: {report['frontend_vs_npy_db_aligned']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
