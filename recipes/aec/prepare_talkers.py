"""Real talkers and noise for echo-cancellation training (issue 17, item 3), split by speaker.

    python recipes/aec/prepare_talkers.py --speechocean ~/data/speechocean762 \
        --librispeech ~/data/resemblyzer/audio_data --esc10 ~/data/esc10 --out runs/aec/data

* talkers: speechocean762 ``train/`` speakers only (CC BY 4.0; its ``test/`` speakers are
  never read) and the LibriSpeech utterances in Resemblyzer's ``audio_data/`` (CC BY 4.0;
  ``librispeech_train-clean-100/`` holds one utterance per speaker, ``librispeech_test-other/``
  ten speakers with ten each). ``--valid-speakers`` speechocean speakers and
  ``--valid-libri`` test-other speakers (every n-th in sorted order, so the choice is fixed)
  are held out for validation; everything else trains.
* noise: ESC-10 (a copy of karolpiczak/ESC-10 at 553c8f1; CC BY / CC0 per clip): folds 1-4
  train, fold 5 validation (the dataset's own folds keep clips of one source recording
  together).

Writes ``talkers_real.npz`` (int16 16 kHz, keys ``split/speaker/index``), ``noise_real.npz``
(``split/class/index``) and ``talkers_real.json`` (speakers per split, licences, hours) to
``--out``. The training config reads them with ``"data": {"real_talkers": true}``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiofcn.io import load_audio

SR = 16000


def _int16(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def speechocean_speakers(root: Path) -> dict[str, list[Path]]:
    """``train/`` speakers -> their wav files (from ``train/wav.scp``; test/ is not read)."""
    out: dict[str, list[Path]] = defaultdict(list)
    for line in (root / "train" / "wav.scp").read_text().split("\n"):
        if line.strip():
            utt, rel = line.split()
            out["so" + utt[:5].lstrip("0").rjust(4, "0")].append(root / rel)
    return dict(out)


def libri_speakers(root: Path) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = defaultdict(list)
    for f in sorted(root.rglob("*.flac")):
        out["libri" + f.name.split("-")[0]].append(f)
    return dict(out)


def split_speakers(so: list[str], libri_test_other: list[str], valid_so: int,
                   valid_libri: int) -> set[str]:
    """The validation speakers: every n-th of the sorted lists (deterministic)."""
    pick = set()
    for names, k in ((sorted(so), valid_so), (sorted(libri_test_other), valid_libri)):
        if k > 0:
            step = max(1, len(names) // k)
            pick |= set(names[::step][:k])
    return pick


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speechocean", type=Path, required=True, help="speechocean762 root")
    ap.add_argument("--librispeech", type=Path, required=True,
                    help="Resemblyzer audio_data/ (LibriSpeech utterances)")
    ap.add_argument("--esc10", type=Path, required=True, help="ESC-10 root (class folders)")
    ap.add_argument("--out", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--valid-speakers", type=int, default=10)
    ap.add_argument("--valid-libri", type=int, default=2)
    args = ap.parse_args(argv)
    for p in (args.speechocean / "train" / "wav.scp", args.librispeech, args.esc10):
        if not p.exists():
            raise SystemExit(f"{p}: not found")
    so, libri = speechocean_speakers(args.speechocean), libri_speakers(args.librispeech)
    test_other = sorted({"libri" + f.name.split("-")[0] for f in
                         (args.librispeech / "librispeech_test-other").rglob("*.flac")})
    valid = split_speakers(list(so), test_other, args.valid_speakers, args.valid_libri)
    arrays: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = defaultdict(float)
    for spk, files in {**so, **libri}.items():
        split = "valid" if spk in valid else "train"
        for i, f in enumerate(files):
            x = load_audio(f, sr=SR)[0][0].numpy()
            arrays[f"{split}/{spk}/{i}"] = _int16(x)
            seconds[split] += len(x) / SR
    tmp = args.out / "talkers_real.tmp.npz"
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez(tmp, **arrays)
    tmp.rename(args.out / "talkers_real.npz")
    noise: dict[str, np.ndarray] = {}
    noise_s: dict[str, float] = defaultdict(float)
    for folder in sorted(p for p in args.esc10.iterdir() if p.is_dir()):
        cls = folder.name.split(" - ")[-1].replace(" ", "_").lower()
        for i, f in enumerate(sorted(folder.glob("*.ogg"))):
            split = "valid" if f.name.startswith("5-") else "train"
            x = load_audio(f, sr=SR)[0][0].numpy()
            if np.abs(x).max() < 1e-4:  # silent clip
                continue
            noise[f"{split}/{cls}/{i}"] = _int16(x / max(np.abs(x).max(), 1e-9) * 0.5)
            noise_s[split] += len(x) / SR
    tmp = args.out / "noise_real.tmp.npz"
    np.savez(tmp, **noise)
    tmp.rename(args.out / "noise_real.npz")
    summary = {
        "talkers": {s: sorted({k.split("/")[1] for k in arrays if k.startswith(s + "/")})
                    for s in ("train", "valid")},
        "talker_hours": {s: round(v / 3600, 3) for s, v in seconds.items()},
        "noise_hours": {s: round(v / 3600, 3) for s, v in noise_s.items()},
        "licences": {"speechocean762 train/": "CC BY 4.0",
                     "LibriSpeech (Resemblyzer audio_data)": "CC BY 4.0",
                     "ESC-10 (karolpiczak/ESC-10 at 553c8f1)": "CC BY / CC0 per clip"},
    }
    (args.out / "talkers_real.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({k: v for k, v in summary.items() if k != "talkers"}),
          {s: len(v) for s, v in summary["talkers"].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
