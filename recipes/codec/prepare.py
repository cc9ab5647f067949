"""Build the codec manifests: built-in rendered music + real speech and music, split by source.

    python recipes/codec/prepare.py --out runs/codec/data [--data-root ../shared/data]

Writes ``train.jsonl``, ``valid.jsonl``, ``test.jsonl`` (absolute paths) in ``--out``. Splits are
by speaker / source recording, never by chunk:

* train: rendered songs; speechbrain ASR speaker 1 and single-mic examples (Apache-2.0); CMU
  ARCTIC speaker aew (MIT); FSDD speakers george, jackson, lucas (CC BY-SA 4.0); LibriSpeech
  speakers 198 and 3436 from librosa's examples (CC BY 4.0); CC BY music from librosa
  (Vibe Ace, Sugar Plum Fairy) and most of sms_tools (CC BY 4.0).
* valid: other rendered songs; FSDD speaker nicolas.
* test (evaluation only, never trained on): speechbrain ASR speaker 2; ARCTIC speaker axb;
  LibriSpeech speaker 5703; FSDD speaker theo; sms_tools speech-male, orchestra, piano,
  sax-phrase, singing-female; librosa music (Hungarian Dance, Let's Go Fishin', Sweet Waltz,
  Choice, Pistachio Ragtime: several are CC BY-NC, hence test only).
* noise (for the FiLM denoise condition): speechbrain noise 1-4, pyroomacoustics exercise_bike.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from audiofcn.io import AudioRecord, audio_info, write_manifest

SMS_TEST = {"speech-male", "orchestra", "piano", "sax-phrase", "singing-female"}
SMS_SKIP = {"impulse-response"}  # 93 ms: too short for a crop
LIBROSA_TRAIN = {"Kevin_MacLeod_-_Vibe_Ace", "Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_"
                 "Plum_Fairy", "198-209-0000", "3436-172162-0000"}
LIBROSA_TEST = {"5703-47212-0000", "Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_"
                "orchestra)", "Karissa_Hobbs_-_Lets_Go_Fishin", "147793__setuniman__sweet-waltz-"
                "0i-22mi", "admiralbob77_-_Choice_-_Drum-bass", "442789__lena-orsa__happy-music-"
                "pistachio-ice-cream-ragtime"}
FSDD_SPLIT = {"george": "train", "jackson": "train", "lucas": "train", "nicolas": "valid",
              "theo": "test"}


def default_data_root() -> Path:
    env = os.environ.get("AUDIOFCN_DATA_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _rec(path: Path, split: str, group: str, kind: str) -> AudioRecord:
    info = audio_info(path)
    return AudioRecord(path=str(path.resolve()), duration=info.duration,
                       sample_rate=info.sample_rate, split=split, group=group, label=kind)


def real_records(root: Path, fsdd_per_speaker: int = 60) -> list[AudioRecord]:
    recs: list[AudioRecord] = []
    sb = root / "speech" / "speechbrain"
    for p in sorted((sb / "ASR").glob("*.flac")):
        spk = p.stem.split("_")[0]
        recs.append(_rec(p, "train" if spk == "spk1" else "test", f"speechbrain-{spk}",
                         "speech"))
    for p in sorted((sb / "single-mic").glob("*.flac")):
        recs.append(_rec(p, "train", f"speechbrain-{p.stem}", "speech"))
    for p in sorted((sb / "noise").glob("*.flac")):
        if p.stem != "noise5":
            recs.append(_rec(p, "noise", f"noise-{p.stem}", "noise"))
    pra = root / "speech" / "pyroomacoustics"
    for p in sorted(pra.glob("*arctic*.flac")):
        spk = "axb" if "axb" in p.stem else "aew"
        recs.append(_rec(p, "test" if spk == "axb" else "train", f"arctic-{spk}", "speech"))
    recs.append(_rec(pra / "exercise_bike.flac", "noise", "noise-bike", "noise"))
    for spk, split in FSDD_SPLIT.items():
        files = sorted((root / "fsdd").glob(f"*_{spk}_*.flac"))[: fsdd_per_speaker]
        recs += [_rec(p, split, f"fsdd-{spk}", "speech") for p in files]
    for p in sorted((root / "librosa").glob("*.ogg")):
        split = "train" if p.stem in LIBROSA_TRAIN else "test" if p.stem in LIBROSA_TEST \
            else None
        if split:
            kind = "speech" if p.stem[0].isdigit() and "-" in p.stem[:5] else "music"
            recs.append(_rec(p, split, f"librosa-{p.stem}", kind))
    for p in sorted((root / "sms_tools").glob("*.flac")):
        if p.stem in SMS_SKIP:
            continue
        kind = "speech" if p.stem.startswith("speech") else "music"
        recs.append(_rec(p, "test" if p.stem in SMS_TEST else "train", f"sms-{p.stem}", kind))
    return recs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/codec/data")
    ap.add_argument("--data-root", type=Path, default=default_data_root())
    ap.add_argument("--songs", type=int, default=64, help="rendered songs (16 kHz, 8 s)")
    ap.add_argument("--fsdd-per-speaker", type=int, default=60)
    ap.add_argument("--no-real", action="store_true", help="rendered music only (tests)")
    ap.add_argument("--song-seconds", type=float, default=8.0)
    args = ap.parse_args(argv)

    from audiofcn.data.synth import SynthConfig, synth_catalog

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cat = out / "rendered"
    songs = synth_catalog(cat, args.songs, seed=7,
                          config=SynthConfig(sample_rate=16000, duration=args.song_seconds),
                          splits=(0.8, 0.1, 0.1), workers=1, progress=False)
    recs = [AudioRecord(path=str(r.resolve(cat).resolve()), duration=r.duration,
                        sample_rate=r.sample_rate, split=r.split, group=f"rendered-{i}",
                        label="music") for i, r in enumerate(songs)]
    if not args.no_real:
        if not args.data_root.exists():
            ap.error(f"{args.data_root}: data root not found (set --data-root)")
        recs += real_records(args.data_root, args.fsdd_per_speaker)
    for split in ("train", "valid", "test", "noise"):
        rows = [r for r in recs if r.split == split]
        if split == "noise":  # manifests only know train/valid/test: noise is a train role
            rows = [AudioRecord(**{**r.__dict__, "split": "train"}) for r in rows]
        write_manifest(out / f"{split}.jsonl", rows)
        print(f"{split}: {len(rows)} files, {sum(r.duration for r in rows) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
