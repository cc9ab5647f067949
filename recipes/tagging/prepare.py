"""Prepare a tagging dataset: audio clips + ``manifest.jsonl`` with train/valid/test splits.

Datasets:
  synth        built-in rendered songs (exact instrument/tempo/mode/meter tags), split by song
  instruments  real instrument notes from ``philharmonia`` + ``sms_tools`` mixed into
               multi-label clips (tags = instruments present): 1-3 instruments, each playing
               a line of its recorded notes (up to 1.5 s each) through the clip at one level
               in -6..0 dB; split by SOURCE FILE: every note file belongs to one split and a
               clip only mixes files of its split
  fsdd         Free Spoken Digit Dataset for the M-series. ``--task speaker``: held-out
               RECORDINGS (utterance index % 10 == 0 -> test, == 1 -> valid; every speaker
               in every split, no recording in two splits). ``--task digit``: held-out
               SPEAKER (theo -> test, nicolas -> valid), so digits are judged on unseen voices
  mtat         MagnaTagATune / MTG-Jamendo: not runnable here; see docs/tagging.md (consumes
               a manifest built by ``data_manifests``)

Examples:
  python recipes/tagging/prepare.py synth --out runs/tagging/synth --n 400
  python recipes/tagging/prepare.py instruments --out runs/tagging/instruments
  python recipes/tagging/prepare.py fsdd --task speaker --out runs/tagging/fsdd_speaker
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
from common import default_data_root

# Philharmonia files are "<instrument>_<pitch>_<length>_<dynamic>_<articulation>.mp3"; the
# percussion folder's many small categories are pooled into one "percussion" tag.
PITCHED = ["banjo", "bass-clarinet", "bassoon", "cello", "clarinet", "contrabassoon",
           "double-bass", "english-horn", "flute", "french-horn", "guitar", "mandolin", "oboe",
           "saxophone", "trombone"]
# sms_tools notes/phrases of the same instruments (CC BY 4.0).
SMS_TOOLS = {"cello-double.flac": "cello", "cello-double-2.flac": "cello",
             "cello-phrase.flac": "cello", "flute-A4.flac": "flute", "oboe-A4.flac": "oboe",
             "sax-phrase.flac": "saxophone", "sax-phrase-short.flac": "saxophone"}


def file_split(name: str, valid: float = 0.15, test: float = 0.2) -> str:
    """Deterministic split of a source file by a hash of its name."""
    u = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def prepare_synth(args: argparse.Namespace) -> None:
    from audiofcn.data.synth import SynthConfig, synth_catalog

    records = synth_catalog(args.out, args.n, seed=args.seed,
                            config=SynthConfig(sample_rate=args.sample_rate,
                                               duration=args.duration),
                            splits=(0.7, 0.1, 0.2), workers=args.workers)
    print(f"{len(records)} songs -> {args.out}/manifest.jsonl")


def _load_mono(path: Path, sr: int) -> np.ndarray:
    """Decode to mono float32 at ``sr``. MP3s are read with soundfile directly: libsndfile's
    MP3 frame count is an estimate, which ``load_audio``'s truncation check rejects."""
    import soundfile as sf
    import torch

    from audiofcn.io import load_audio, resample

    if path.suffix.lower() != ".mp3":
        return load_audio(path, sr=sr)[0][0].numpy()
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(torch.from_numpy(data.mean(axis=1)), int(file_sr), sr).numpy()


def _instrument_sources(root: Path, sr: int) -> list[tuple[str, str, np.ndarray]]:
    """(file name, tag, mono audio at ``sr``) of every usable note/phrase file."""
    from tqdm import tqdm

    from audiofcn.io import AudioError

    items = []
    phil = sorted(f for f in (root / "philharmonia").glob("*")
                  if f.suffix.lower() in (".mp3", ".wav", ".flac"))
    sms = [root / "sms_tools" / n for n in SMS_TOOLS if (root / "sms_tools" / n).exists()]
    if not phil:
        sys.exit(f"no philharmonia files under {root}; pass --data-root")
    for f in tqdm([*phil, *sms], desc="decoding notes"):
        if f.parent.name == "sms_tools":
            tag = SMS_TOOLS[f.name]
        else:
            inst = f.name.split("_")[0]
            tag = inst if inst in PITCHED else "percussion"
        try:
            a = _load_mono(f, sr)
        except (AudioError, RuntimeError) as err:
            print(f"skipping {f}: {err}", file=sys.stderr)
            continue
        # Trim leading/trailing near-silence so a placed note is audible in the clip.
        loud = np.nonzero(np.abs(a) > 0.01 * (np.abs(a).max() + 1e-9))[0]
        if len(loud) < sr // 20:
            continue
        items.append((f.name, tag, a[loud[0]:loud[-1] + 1]))
    return items


def prepare_instruments(args: argparse.Namespace) -> None:
    from audiofcn.io import AudioRecord, save_audio, write_manifest

    sr, n_samples = args.sample_rate, int(args.duration * args.sample_rate)
    sources = _instrument_sources(Path(args.data_root), sr)
    by_split: dict[str, dict[str, list[tuple[str, np.ndarray]]]] = {}
    for name, tag, audio in sources:
        by_split.setdefault(file_split(name), {}).setdefault(tag, []).append((name, audio))
    counts = {"train": args.n_train, "valid": args.n_valid, "test": args.n_test}
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    records = []
    for split, n_clips in counts.items():
        pools = by_split.get(split, {})
        tags_available = sorted(pools)
        for i in range(n_clips):
            k = int(rng.integers(1, args.max_instruments + 1))
            chosen = rng.choice(tags_available, size=min(k, len(tags_available)),
                                replace=False)
            mix = np.zeros(n_samples, dtype=np.float32)
            files = []
            for tag in chosen:
                # The instrument plays a line through the clip: notes of its (split's) files
                # one after another with short gaps, at one level per instrument.
                line = np.zeros(n_samples, dtype=np.float32)
                pos = int(rng.integers(0, sr // 2))
                while pos < n_samples - sr // 10:
                    name, note = pools[tag][int(rng.integers(len(pools[tag])))]
                    seg = note[: min(len(note), n_samples - pos, int(1.5 * sr))].copy()
                    fade = min(len(seg) // 4, sr // 50)
                    if fade:
                        seg[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
                    line[pos:pos + len(seg)] += seg / (np.abs(seg).max() + 1e-9)
                    files.append(name)
                    pos += len(seg) + int(rng.integers(0, sr // 5))
                mix += 10 ** (rng.uniform(-6, 0) / 20) * line
            mix *= 0.9 / max(float(np.abs(mix).max()), 1e-6)
            rel = f"audio/{split}_{i:05d}.wav"
            save_audio(out / rel, mix, sr, subtype="PCM_16")
            records.append(AudioRecord(rel, args.duration, sr, split=split,
                                       tags=sorted(set(map(str, chosen))),
                                       meta={"sources": sorted(set(files))}))
    write_manifest(out / "manifest.jsonl", records)
    leaks = {s for r in records if r.split == "test" for s in r.meta["sources"]} & \
        {s for r in records if r.split != "test" for s in r.meta["sources"]}
    assert not leaks, f"source files in test and train: {sorted(leaks)[:5]}"
    print(f"{len(records)} clips ({counts}), {len(sources)} source files, "
          f"tags {sorted({t for r in records for t in r.tags})} -> {out}/manifest.jsonl")


def prepare_fsdd(args: argparse.Namespace) -> None:
    from audiofcn.io import AudioRecord, audio_info, write_manifest

    root = Path(args.data_root) / "fsdd"
    files = sorted(root.glob("*.flac"))
    if not files:
        sys.exit(f"no FSDD files under {root}; pass --data-root")
    records = []
    for f in files:
        digit, speaker, index = f.stem.split("_")
        if args.task == "speaker":
            # Hold out recordings, never chunks: utterance index decides the split, so the
            # test recordings of each speaker are never heard in training.
            split = "test" if int(index) % 10 == 0 else "valid" if int(index) % 10 == 1 \
                else "train"
            label = speaker
        else:
            split = "test" if speaker == "theo" else "valid" if speaker == "nicolas" \
                else "train"
            label = digit
        info = audio_info(f)
        records.append(AudioRecord(str(f.resolve()), info.duration, info.sample_rate,
                                   split=split, label=label, group=f"{speaker}_{index}"
                                   if args.task == "speaker" else speaker))
    write_manifest(Path(args.out) / "manifest.jsonl", records)
    n = {s: sum(r.split == s for r in records) for s in ("train", "valid", "test")}
    print(f"FSDD {args.task}: {n} -> {args.out}/manifest.jsonl")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=["synth", "instruments", "fsdd", "mtat"])
    p.add_argument("--out", required=True)
    p.add_argument("--data-root", default=str(default_data_root()))
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--duration", type=float, default=None, help="clip/song seconds")
    p.add_argument("--n", type=int, default=400, help="synth: songs")
    p.add_argument("--workers", type=int, default=1, help="synth: render processes")
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-valid", type=int, default=150)
    p.add_argument("--n-test", type=int, default=300)
    p.add_argument("--max-instruments", type=int, default=3)
    p.add_argument("--task", choices=["speaker", "digit"], default="speaker")
    args = p.parse_args(argv)
    if args.dataset == "synth":
        args.duration = args.duration or 8.0
        prepare_synth(args)
    elif args.dataset == "instruments":
        args.duration = args.duration or 3.0
        prepare_instruments(args)
    elif args.dataset == "fsdd":
        prepare_fsdd(args)
    else:
        sys.exit("MagnaTagATune/MTG-Jamendo cannot be downloaded here: build a manifest with "
                 "data_manifests (see docs/tagging.md), then run train.py --manifest it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
