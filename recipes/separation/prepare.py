"""Build manifests for the separation recipe.

* ``mir1k``: ``<data-root>/mir1k/Wavfile/*.flac`` (16 kHz stereo, left = accompaniment, right =
  voice), split **by singer** (the file name's first field): the test and validation singers are
  fixed in ``configs/splits.json``; every clip of a singer lands in one split.
* ``synth``: songs with a vocal-like lead line rendered by the built-in synthesizer (exact stems;
  split by song).
* ``extra``: single-kind recordings for on-the-fly mixtures (``mixes.py``), all ``train``:
  ``speech`` voices (speechocean762 ``train/`` speakers, ``--per-speaker`` utterances each, and
  the LibriSpeech utterances of Resemblyzer's ``audio_data``; CC BY 4.0), ``singing`` voices
  (``sms_tools`` CC BY 4.0, ``speech/pyroomacoustics`` MIT) and ``instruments`` accompaniment
  (the same two folders). ``meta["licence"]`` names each file's terms.

Usage::

    python recipes/separation/prepare.py mir1k --out runs/separation/data/mir1k
    python recipes/separation/prepare.py synth --out runs/separation/data/synth --n 160
    python recipes/separation/prepare.py extra --out runs/separation/data/extra \
        --speechocean-spk2utt PATH/speechocean762/train/spk2utt
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


# Files of the shared data folder by role (see its README.md for the licences).
SINGING = ["sms_tools/singing-female.flac", "sms_tools/soprano-E4.flac", "sms_tools/vignesh.flac",
           "speech/pyroomacoustics/singing_8000.flac"]
INSTRUMENTS = ["sms_tools/" + n + ".flac" for n in (
    "bendir", "cello-double", "cello-double-2", "cello-phrase", "flute-A4", "mridangam",
    "oboe-A4", "orchestra", "organ-C3", "piano", "sax-phrase", "sax-phrase-short", "trumpet-A4",
    "vibraphone-C6", "violin-B3")] + ["speech/pyroomacoustics/guitar_16k.flac"]


def _licence(rel: str) -> str:
    return "MIT (pyroomacoustics)" if "pyroomacoustics" in rel else "CC BY 4.0 (sms-tools)"


def prepare_extra(data_root: Path, speechocean: Path, spk2utt: Path, librispeech: list[Path],
                  per_speaker: int, out: Path) -> list[AudioRecord]:
    records = []

    def add(path: Path, group: str, role: str, licence: str) -> None:
        info = audio_info(path)
        records.append(AudioRecord(path=str(path.resolve()), duration=info.duration,
                                   sample_rate=info.sample_rate, split="train", group=group,
                                   meta={"role": role, "licence": licence}))

    for line in spk2utt.read_text().splitlines():
        spk, *utts = line.split()
        for utt in utts[:per_speaker]:
            add(speechocean / "WAVE" / f"SPEAKER{spk}" / f"{utt}.WAV", "speech", "voice",
                "CC BY 4.0 (speechocean762, train/ speakers)")
    for folder in librispeech:
        for f in sorted(folder.rglob("*.flac")):
            add(f, "speech", "voice", "CC BY 4.0 (LibriSpeech via Resemblyzer)")
    for rel in SINGING:
        add(data_root / rel, "singing", "voice", _licence(rel))
    for rel in INSTRUMENTS:
        add(data_root / rel, "instruments", "accompaniment", _licence(rel))
    write_manifest(out / "manifest.jsonl", records)
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=["mir1k", "synth", "extra"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data-root", type=Path, default=default_data_root())
    ap.add_argument("--n", type=int, default=160, help="synth: number of songs")
    ap.add_argument("--seed", type=int, default=5, help="synth: catalog seed")
    ap.add_argument("--duration", type=float, default=8.0, help="synth: seconds per song")
    home = Path.home() / "data"
    ap.add_argument("--speechocean", type=Path, default=home / "speechocean762",
                    help="extra: speechocean762 root (WAVE/SPEAKERxxxx/*.WAV)")
    ap.add_argument("--speechocean-spk2utt", type=Path, default=None,
                    help="extra: its train/spk2utt (default: <speechocean>/train/spk2utt)")
    ap.add_argument("--librispeech", type=Path, nargs="*",
                    default=sorted((home / "resemblyzer" / "audio_data").glob("librispeech_*")),
                    help="extra: folders of LibriSpeech .flac utterances")
    ap.add_argument("--per-speaker", type=int, default=4,
                    help="extra: speechocean762 utterances per train speaker")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dataset == "mir1k":
        recs = prepare_mir1k(args.data_root, args.out)
    elif args.dataset == "extra":
        recs = prepare_extra(args.data_root, args.speechocean,
                             args.speechocean_spk2utt or args.speechocean / "train" / "spk2utt",
                             args.librispeech, args.per_speaker, args.out)
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
