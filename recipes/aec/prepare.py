"""Prepare echo-cancellation data: talker/noise/RIR manifests split by source, a bank of
simulated room impulse responses, and a fixed held-out test set of simulated scenarios.

    python recipes/aec/prepare.py [--data-root ../shared/data] [--out runs/aec/data]

Splits (never by chunk): talkers are split by speaker. train: FSDD george/jackson/lucas/nicolas
(CC BY-SA 4.0, 8 kHz upsampled), CMU ARCTIC aew (MIT), LibriSpeech 198 and 3436 from librosa
(CC BY 4.0), speechbrain spk1 (Apache-2.0); valid: FSDD theo; test: speechbrain spk2, ARCTIC
axb and a0010, LibriSpeech 5703. Noise: train speechbrain noise1-3 + "doing the dishes", test
noise4-5 + "exercise bike". Measured RIRs: rir1-2 train, rir3-4 test; simulated rooms use
disjoint seeds for train and test.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from audiofcn.aec.simulation import SCENARIOS, AECSimConfig, simulate_example, simulate_rir
from audiofcn.io import AudioRecord, load_audio, save_audio, write_manifest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = Path(os.environ.get("AUDIOFCN_DATA_ROOT", REPO.parent / "shared" / "data"))
SR = 16000

SPEECH = {  # relative path pattern -> (speaker, split, licence)
    "speech/speechbrain/ASR/spk1_*.flac": ("sb_spk1", "train", "Apache-2.0"),
    "speech/speechbrain/ASR/spk2_*.flac": ("sb_spk2", "test", "Apache-2.0"),
    "speech/pyroomacoustics/cmu_arctic_us_aew_*.flac": ("arctic_aew", "train", "MIT"),
    "speech/pyroomacoustics/cmu_arctic_us_axb_*.flac": ("arctic_axb", "test", "MIT"),
    "speech/pyroomacoustics/arctic_a0010.flac": ("arctic_a0010", "test", "MIT"),
    "librosa/198-209-0000.ogg": ("libri_198", "train", "CC BY 4.0"),
    "librosa/3436-172162-0000.ogg": ("libri_3436", "train", "CC BY 4.0"),
    "librosa/5703-47212-0000.ogg": ("libri_5703", "test", "CC BY 4.0"),
}
FSDD_SPLIT = {"george": "train", "jackson": "train", "lucas": "train", "nicolas": "train",
              "theo": "valid"}
TEST_NEAR = {"sb_spk2", "arctic_a0010"}
TEST_FAR = {"arctic_axb", "libri_5703"}
NOISE = {
    "speech/speechbrain/noise/noise1.flac": "train", "speech/speechbrain/noise/noise2.flac":
    "train", "speech/speechbrain/noise/noise3.flac": "train",
    "speech/pyroomacoustics/doing_the_dishes.flac": "train",
    "speech/speechbrain/noise/noise4.flac": "test", "speech/speechbrain/noise/noise5.flac": "test",
    "speech/pyroomacoustics/exercise_bike.flac": "test",
}
RIRS = {"speech/speechbrain/RIRs/rir1.flac": "train", "speech/speechbrain/RIRs/rir2.flac":
        "train", "speech/speechbrain/RIRs/rir3.flac": "test",
        "speech/speechbrain/RIRs/rir4.flac": "test"}


def _record(root: Path, rel: str, split: str, group: str, licence: str) -> AudioRecord:
    import soundfile as sf

    info = sf.info(str(root / rel))
    return AudioRecord(rel, info.duration, info.samplerate, split, group=group,
                       meta={"licence": licence})


def build_manifests(root: Path, fsdd_per_speaker: int = 150) -> dict[str, list[AudioRecord]]:
    speech = []
    for pattern, (spk, split, lic) in SPEECH.items():
        for f in sorted(root.glob(pattern)):
            speech.append(_record(root, str(f.relative_to(root)), split, spk, lic))
    for spk, split in FSDD_SPLIT.items():
        files = sorted((root / "fsdd").glob(f"*_{spk}_*.flac"))[:fsdd_per_speaker]
        speech += [_record(root, str(f.relative_to(root)), split, f"fsdd_{spk}",
                           "CC BY-SA 4.0") for f in files]
    noise = [_record(root, rel, split, Path(rel).stem, "Apache-2.0" if "speechbrain" in rel
                     else "MIT") for rel, split in NOISE.items() if (root / rel).exists()]
    rirs = [_record(root, rel, split, Path(rel).stem, "Apache-2.0")
            for rel, split in RIRS.items() if (root / rel).exists()]
    return {"speech": speech, "noise": noise, "rirs": rirs}


def load_pool(root: Path, records: list[AudioRecord], split: str,
              groups: set[str] | None = None) -> list[np.ndarray]:
    return [load_audio(r.resolve(root), sr=SR)[0][0].numpy() for r in records
            if r.split == split and (groups is None or r.group in groups)]


def rir_bank(n_rooms: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    bank = []
    for _ in range(n_rooms):
        bank += simulate_rir(rng, SR, n_rirs=2)  # two loudspeaker positions per room
    return bank


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--out", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--rooms", type=int, default=150, help="simulated training rooms")
    ap.add_argument("--test-rooms", type=int, default=20)
    ap.add_argument("--test-per-scenario", type=int, default=8)
    ap.add_argument("--test-seconds", type=float, default=6.0)
    ap.add_argument("--fsdd-per-speaker", type=int, default=150)
    args = ap.parse_args(argv)
    root, out = args.data_root, args.out
    if not root.exists():
        raise SystemExit(f"{root}: data root not found (set --data-root or AUDIOFCN_DATA_ROOT)")
    out.mkdir(parents=True, exist_ok=True)
    manifests = build_manifests(root, args.fsdd_per_speaker)
    for name, recs in manifests.items():
        write_manifest(out / f"{name}.jsonl", recs)
    np.savez_compressed(out / "rir_bank_train.npz", *rir_bank(args.rooms, seed=1))
    test_rirs = rir_bank(args.test_rooms, seed=2)
    test_rirs += load_pool(root, manifests["rirs"], "test")
    np.savez_compressed(out / "rir_bank_test.npz", *test_rirs)

    # Held-out test set: near-end and far-end talkers are different test speakers; test
    # noises, test rooms and the measured test RIRs.
    near = load_pool(root, manifests["speech"], "test", TEST_NEAR)
    far = load_pool(root, manifests["speech"], "test", TEST_FAR)
    noise = load_pool(root, manifests["noise"], "test")
    cfg = AECSimConfig(duration=args.test_seconds, nonlinear_prob=0.8)
    test_dir = out / "test"
    test_dir.mkdir(exist_ok=True)
    records = []
    for s_i, scenario in enumerate(SCENARIOS):
        for i in range(args.test_per_scenario):
            seed = 900_000 + 1000 * s_i + i
            ex = simulate_example(seed, near, far, noise, test_rirs, cfg, scenario,
                                  simulate_rooms=False)
            roles = {}
            for role in ("mic", "ref", "near", "echo", "noise"):
                rel = f"test/{scenario}_{i:02d}_{role}.wav"
                save_audio(out / rel, np.asarray(getattr(ex, role))[None], SR)
                roles[role] = rel
            records.append(AudioRecord(roles["mic"], args.test_seconds, SR, "test",
                                       label=scenario, roles=roles, group=f"seed{seed}",
                                       meta={"ser_db": ex.ser_db, "snr_db": ex.snr_db,
                                             **{k: v for k, v in ex.meta.items()}}))
    write_manifest(out / "test.jsonl", records)
    summary = {name: {s: sum(r.split == s for r in recs) for s in ("train", "valid", "test")}
               for name, recs in manifests.items()}
    summary["rir_bank"] = {"train": 2 * args.rooms, "test": len(test_rirs)}
    summary["test_clips"] = len(records)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
