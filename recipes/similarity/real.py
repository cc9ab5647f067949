"""Real recordings for the similarity recipe: which files may be trained on, which are held out.

Training and evaluation share these rules so that no evaluation catalog item is ever trained
on (``python recipes/similarity/evaluate.py --catalog heldout``, the default):

- ``mir1k``: split by SINGER. Clips of ``MIR1K_TRAIN_SINGERS`` may be trained on; the
  evaluation catalog is the other 8 singers' 160 clips (relevance = same singer + song, so no
  relevance group crosses the split).
- ``philharmonia``: split by SOURCE FILE with the tagging recipe's hash rule
  (``recipes/tagging/prepare.py:file_split``): ``train`` files may be trained on; the evaluation
  catalog is the pitched ``valid`` + ``test`` files.
- ``ccby``: CC BY / public-domain music from ``sms_tools`` and ``librosa`` (licences in
  ``../shared/data/README.md`` and the per-clip ``.txt``); never in an evaluation catalog, and
  the only real audio allowed into shipped weights.

``mir1k`` (research use) and ``philharmonia`` (research/evaluation only) may only go into
recipe models reported in the docs, never into ``src/audiofcn/pretrained``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from audiofcn.io import audio_info, load_audio

# Four of the twelve singers (the first four alphabetically, chosen before any result).
MIR1K_TRAIN_SINGERS = ("abjones", "amy", "annar", "ariel")

# Music (not sines, speech, rain, impulse responses) under CC BY 4.0 (sms_tools) or CC BY /
# public domain (librosa, see each clip's .txt). Karissa Hobbs' song is stored twice.
CCBY_MUSIC = (
    "sms_tools/bendir.flac", "sms_tools/carnatic.flac", "sms_tools/cello-double.flac",
    "sms_tools/cello-double-2.flac", "sms_tools/cello-phrase.flac", "sms_tools/flute-A4.flac",
    "sms_tools/mridangam.flac", "sms_tools/oboe-A4.flac", "sms_tools/orchestra.flac",
    "sms_tools/organ-C3.flac", "sms_tools/piano.flac", "sms_tools/sax-phrase.flac",
    "sms_tools/sax-phrase-short.flac", "sms_tools/singing-female.flac",
    "sms_tools/soprano-E4.flac", "sms_tools/trumpet-A4.flac", "sms_tools/vibraphone-C6.flac",
    "sms_tools/vignesh.flac", "sms_tools/violin-B3.flac",
    "librosa/Kevin_MacLeod_-_P_I_Tchaikovsky_Dance_of_the_Sugar_Plum_Fairy.ogg",
    "librosa/Kevin_MacLeod_-_Vibe_Ace.ogg", "librosa/Karissa_Hobbs_-_Lets_Go_Fishin.ogg",
    "librosa/sorohanro_-_solo-trumpet-06.ogg",
    "librosa/Hungarian_Dance_number_5_-_Allegro_in_F_sharp_minor_(string_orchestra).ogg",
)
REAL_SETS = ("ccby", "mir1k", "philharmonia")


def file_split(name: str, valid: float = 0.15, test: float = 0.2) -> str:
    """The tagging recipe's deterministic split of a source file by a hash of its name (kept
    identical so both recipes hold out the same Philharmonia files)."""
    u = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if u < test else "valid" if u < test + valid else "train"


def mir1k_singer(name: str) -> str:
    return Path(name).stem.split("_")[0]


def trainable(dataset: str, name: str) -> bool:
    """May file ``name`` (a base name) of ``dataset`` be used for training?"""
    if dataset == "mir1k":
        return mir1k_singer(name) in MIR1K_TRAIN_SINGERS
    if dataset == "philharmonia":
        return file_split(name) == "train"
    raise ValueError(f"no split rule for {dataset!r}")


def _load(path: Path, sr: int) -> torch.Tensor:
    # libsndfile's MP3 frame count is an estimate: read with an explicit duration.
    dur = audio_info(path).duration + 1.0 if path.suffix.lower() == ".mp3" else None
    return load_audio(path, sr=sr, duration=dur)[0][0]


def training_files(root: Path, sets: list[str]) -> list[tuple[str, Path]]:
    """``(set, path)`` of every trainable file of ``sets`` under data root ``root``. MIR-1K may
    be stored as FLAC or (packed smaller) OGG with the same stems."""
    out: list[tuple[str, Path]] = []
    for s in sets:
        if s == "ccby":
            out += [(s, root / rel) for rel in CCBY_MUSIC if (root / rel).exists()]
        elif s == "mir1k":
            files = sorted([*(root / "mir1k" / "Wavfile").glob("*.flac"),
                            *(root / "mir1k" / "Wavfile").glob("*.ogg")])
            out += [(s, p) for p in files if trainable(s, p.name)]
        elif s == "philharmonia":
            files = sorted((root / "philharmonia").glob("*.mp3"))
            out += [(s, p) for p in files if trainable(s, p.name)]
        else:
            raise ValueError(f"unknown real set {s!r}; choose from {REAL_SETS}")
    return out


def load_training_audio(root: Path, sets: list[str], sr: int
                        ) -> tuple[list[torch.Tensor], list[str]]:
    """Mono waveforms (MIR-1K: accompaniment + voice) and their ``set/name`` labels."""
    waves, names = [], []
    for s, p in training_files(root, sets):
        w = _load(p, sr)
        if w.abs().max() > 1e-4:  # skip silent files
            waves.append(w)
            names.append(f"{s}/{p.name}")
    if not waves:
        raise FileNotFoundError(f"no training files of {sets} under {root}")
    return waves, names
