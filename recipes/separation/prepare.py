"""Build manifests for the separation recipe.

* ``mir1k``: ``<data-root>/mir1k/Wavfile/*.flac`` (16 kHz stereo, left = accompaniment, right =
  voice), split **by singer** (the file name's first field): the test and validation singers are
  fixed in ``configs/splits.json``; every clip of a singer lands in one split.
* ``synth``: songs with a vocal-like lead line rendered by the built-in synthesizer (exact stems;
  split by song).

Usage::

    python recipes/separation/prepare.py mir1k --out runs/separation/data/mir1k
    python recipes/separation/prepare.py synth --out runs/separation/data/synth --n 160
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import HERE, default_data_root  # noqa: E402

from audiofcn.io import AudioRecord, audio_info, write_manifest  # noqa: E402


def prepare_mir1k(data_root: Path, out: Path) -> list[AudioRecord]:
    splits = json.loads((HERE / "configs" / "splits.json").read_text())["mir1k"]
    wav_dir = data_root / "mir1k" / "Wavfile"
    files = sorted(wav_dir.glob("*.flac")) + sorted(wav_dir.glob("*.wav"))
    if not files:
        raise SystemExit(f"{wav_dir}: no MIR-1K clips found (set --data-root)")
    records = []
    for f in files:
        singer = f.stem.split("_")[0]
        split = "test" if singer in splits["test"] else \
            "valid" if singer in splits["valid"] else "train"
        info = audio_info(f)
        records.append(AudioRecord(path=str(f.resolve()), duration=info.duration,
                                   sample_rate=info.sample_rate, split=split, group=singer,
                                   meta={"layout": "mir1k"}))
    write_manifest(out / "manifest.jsonl", records)
    return records


def prepare_synth(out: Path, n: int, seed: int, duration: float) -> list[AudioRecord]:
    from audiofcn.data.synth import SynthConfig, synth_catalog

    # Every song has the vocal-like lead; the separator learns what is *not* the voice from
    # the other parts (which include melodic leads half of the time).
    cfg = SynthConfig(sample_rate=16000, duration=duration, p_voice=1.0)
    return synth_catalog(out, n, seed=seed, config=cfg, with_stems=True, workers=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["mir1k", "synth"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-root", type=Path, default=default_data_root())
    ap.add_argument("--n", type=int, default=160, help="synth: number of songs")
    ap.add_argument("--seed", type=int, default=5, help="synth: catalog seed")
    ap.add_argument("--duration", type=float, default=8.0, help="synth: seconds per song")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dataset == "mir1k":
        recs = prepare_mir1k(args.data_root, args.out)
    else:
        recs = prepare_synth(args.out, args.n, args.seed, args.duration)
    counts: dict[str, int] = {}
    groups: dict[str, set[str]] = {}
    for r in recs:
        counts[r.split] = counts.get(r.split, 0) + 1
        groups.setdefault(r.split, set()).add(r.group or "")
    print(json.dumps({"manifest": str(args.out / "manifest.jsonl"), "clips": counts,
                      "groups": {k: sorted(v)[:12] for k, v in groups.items()}}))


if __name__ == "__main__":
    main()
