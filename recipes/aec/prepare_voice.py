"""Extra near-end voices for AEC training (never the AEC test talkers), one manifest per
licence so a run's data terms are explicit.

    python recipes/aec/prepare_voice.py --out runs/aec/data              # sms_tools speech
    python recipes/aec/prepare_voice.py --out runs/aec/data --mir1k 3    # + MIR-1K voices

* ``voice_cc.jsonl``: sms_tools ``speech-female`` and ``speech-male`` (CC BY 4.0; 44.1 kHz,
  resampled): redistributable, two more full-band talkers.
* ``voice_mir1k.jsonl`` (with ``--mir1k N``): the singing-voice channel (right) of the first
  ``N`` clips of each of MIR-1K's 12 singers, 16 kHz. **Research use only** (MIR-1K terms):
  a model trained on it must not ship as the package's default.

Files go to ``--out``/voice/ as 16-bit FLAC; manifest paths are relative to ``--out``, every
record in the ``train`` split with its speaker as ``group``. The training config lists the
manifests under ``data.extra_near``; those talkers are used as near-end only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from audiofcn.io import AudioRecord, load_audio, write_manifest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = Path(os.environ.get("AUDIOFCN_DATA_ROOT", REPO.parent / "shared" / "data"))
SR = 16000
SMS_SPEECH = {"sms_tools/speech-female.flac": "sms_female", "sms_tools/speech-male.flac":
              "sms_male"}


def _write(out: Path, name: str, x: np.ndarray, group: str, licence: str) -> AudioRecord:
    rel = f"voice/{name}.flac"
    (out / "voice").mkdir(parents=True, exist_ok=True)
    sf.write(out / rel, np.clip(x, -1, 1), SR, subtype="PCM_16")
    return AudioRecord(rel, len(x) / SR, SR, "train", group=group, meta={"licence": licence})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--mir1k", type=int, default=0, help="clips per MIR-1K singer (0: none)")
    args = ap.parse_args(argv)
    recs = [_write(args.out, Path(rel).stem, load_audio(args.data_root / rel, sr=SR)[0][0]
                   .numpy(), group, "CC BY 4.0")
            for rel, group in SMS_SPEECH.items() if (args.data_root / rel).exists()]
    write_manifest(args.out / "voice_cc.jsonl", recs)
    print(f"voice_cc.jsonl: {len(recs)} files, {sum(r.duration for r in recs):.1f} s")
    if args.mir1k:
        files = sorted((args.data_root / "mir1k" / "Wavfile").glob("*.flac"))
        per: dict[str, int] = {}
        mir = []
        for f in files:
            singer = f.stem.split("_")[0]
            if per.setdefault(singer, 0) >= args.mir1k:
                continue
            per[singer] += 1
            stereo = load_audio(f, sr=SR, mono=False, expected_channels=2)[0]
            mir.append(_write(args.out, f"mir1k_{f.stem}", stereo[1].numpy(),
                              f"mir1k_{singer}", "MIR-1K research use"))
        write_manifest(args.out / "voice_mir1k.jsonl", mir)
        print(f"voice_mir1k.jsonl: {len(mir)} files, {sum(r.duration for r in mir):.1f} s, "
              f"{len(per)} singers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
