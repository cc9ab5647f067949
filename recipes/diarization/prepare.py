"""Build the speaker manifest for training the diarization embedding.

    python recipes/diarization/prepare.py --speechocean ~/data/speechocean762 \
        --librispeech ~/data/resemblyzer/audio_data --out runs/diarization/data

Writes ``OUT/speakers.jsonl``: one line per utterance ``{"path", "speaker", "frames",
"sample_rate", "start", "end", "split", "age"}`` with paths relative to ``OUT/root`` (a symlink
farm to the two data roots, so the manifest holds no machine path; ``age`` from speechocean762's
``spk2age``, null for LibriSpeech). ``start``/``end`` bound the
samples within 40 dB of the utterance's loudest 25-ms frame.

Splits: speechocean762 ``train/`` speakers -> train, except ``--valid-speakers`` of them (and as
many LibriSpeech speakers) -> valid (checkpoint selection); speechocean762 ``test/`` speakers ->
test (evaluation only, never trained on). LibriSpeech (the ``librispeech_train-clean-100`` and
``librispeech_test-other`` folders of a copy of resemble-ai/Resemblyzer ``audio_data``, CC BY
4.0) -> train/valid. Everything here is CC BY 4.0 audio.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofcn.io.audio import atomic_output


def speech_bounds(x: np.ndarray, sr: int, floor_db: float = 40.0) -> tuple[int, int]:
    hop = int(0.025 * sr)
    n = max(1, len(x) // hop)
    e = np.array([np.mean(x[i * hop:(i + 1) * hop] ** 2) for i in range(n)]) + 1e-12
    db = 10 * np.log10(e)
    on = np.nonzero(db > db.max() - floor_db)[0]
    if len(on) == 0:
        return 0, len(x)
    return int(on[0] * hop), int(min(len(x), (on[-1] + 1) * hop))


def record(root: Path, rel: str, speaker: str, split: str, age: int | None) -> dict:
    x, sr = sf.read(str(root / rel), dtype="float32", always_2d=True)
    x = x.mean(1)
    s, e = speech_bounds(x, sr)
    return {"path": rel, "speaker": speaker, "frames": len(x), "sample_rate": sr, "start": s,
            "end": e, "split": split, "age": age}


def kaldi_list(so: Path, part: str) -> list[tuple[str, str]]:
    scp = dict(line.split() for line in (so / part / "wav.scp").read_text().splitlines()
               if line.strip())
    spk = dict(line.split() for line in (so / part / "utt2spk").read_text().splitlines()
               if line.strip())
    return [(scp[u], spk[u]) for u in sorted(scp)]


def ages(so: Path) -> dict[str, int]:
    """speechocean762 speaker -> age (``spk2age`` of both parts)."""
    out = {}
    for part in ("train", "test"):
        f = so / part / "spk2age"
        if f.exists():
            out.update({k: int(v) for k, v in (line.split()[:2] for line in
                                                f.read_text().splitlines() if line.strip())})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--speechocean", type=Path, required=True)
    ap.add_argument("--librispeech", type=Path, default=None,
                    help="Resemblyzer audio_data folder (LibriSpeech part only is used)")
    ap.add_argument("--out", type=Path, default=Path("runs/diarization/data"))
    ap.add_argument("--valid-speakers", type=int, default=15)
    ap.add_argument("--max-utts", type=int, default=None, help="per speaker (tiny runs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    root = args.out / "root"
    root.mkdir(parents=True, exist_ok=True)
    for name, target in (("speechocean762", args.speechocean),
                         ("librispeech", args.librispeech)):
        link = root / name
        if target is not None and not link.exists():
            link.symlink_to(target.resolve())
    rng = random.Random(args.seed)
    so_train = kaldi_list(args.speechocean, "train")
    so_spk = sorted({s for _, s in so_train})
    valid = set(rng.sample(so_spk, args.valid_speakers))
    items: list[tuple[str, str, str]] = []
    per: dict[str, int] = {}

    def add(rel: str, spk: str, split: str) -> None:
        if args.max_utts is None or per.get(spk, 0) < args.max_utts:
            per[spk] = per.get(spk, 0) + 1
            items.append((rel, spk, split))

    for rel, spk in so_train:
        add(f"speechocean762/{rel}", f"so{spk}", "valid" if spk in valid else "train")
    for rel, spk in kaldi_list(args.speechocean, "test"):
        add(f"speechocean762/{rel}", f"so{spk}", "test")
    if args.librispeech is not None:
        ls = sorted(p.relative_to(args.librispeech) for p in
                    args.librispeech.glob("librispeech_*/**/*.flac"))
        ls_spk = sorted({p.name.split("-")[0] for p in ls})
        ls_valid = set(rng.sample(ls_spk, min(args.valid_speakers, len(ls_spk) // 5)))
        for p in ls:
            spk = p.name.split("-")[0]
            add(f"librispeech/{p}", f"ls{spk}", "valid" if spk in ls_valid else "train")
    age = ages(args.speechocean)
    rows = []
    for i, (rel, spk, split) in enumerate(items):
        rows.append(record(root, rel, spk, split, age.get(spk[2:]) if spk.startswith("so")
                           else None))
        if i % 500 == 0:
            print(f"{i}/{len(items)}", flush=True)
    with atomic_output(args.out / "speakers.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = {s: len({r["speaker"] for r in rows if r["split"] == s})
              for s in ("train", "valid", "test")}
    print(json.dumps({"utterances": len(rows), "speakers": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
