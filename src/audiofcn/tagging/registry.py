"""Shipped taggers: names, files, and what each one knows (its card).

A shipped tagger is ``pretrained/tagger_<name>.safetensors``; its card says which tags it
predicts, what it was trained on and under which licence the weights are given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn

DEFAULT_TAGGER = "msd50_crnn"


@dataclass(frozen=True)
class ModelCard:
    vocabulary: str
    training_data: str
    licence: str
    source: str


MODEL_CARDS: dict[str, ModelCard] = {
    "msd50_crnn": ModelCard(
        "50 Last.fm tags of the Million Song Dataset (genres, eras, moods, vocals, instruments)",
        "Million Song Dataset 29.1 s previews with Last.fm top-50 tags (Choi et al. 2017)",
        "MIT (c) 2016 Keunwoo Choi",
        "ported from keunwoochoi/music-auto_tagging-keras MusicTaggerCRNN"),
    "msd50_fcn": ModelCard(
        "50 Last.fm tags of the Million Song Dataset (genres, eras, moods, vocals, instruments)",
        "Million Song Dataset 29.1 s previews with Last.fm top-50 tags (Choi et al. 2016)",
        "MIT (c) 2016 Keunwoo Choi",
        "ported from keunwoochoi/music-auto_tagging-keras MusicTaggerCNN"),
    "fcn_synth": ModelCard(
        "19 tags of rendered General-MIDI songs (instruments, drums, vocals, tempo, mode)",
        "songs rendered by audiofcn from General-MIDI scores (built-in synthetic data)",
        "same licence as audiofcn",
        "trained by recipes/tagging (see the pretrained README)"),
}


def pretrained_dir() -> Path:
    """The package folder holding shipped weights."""
    return Path(__file__).resolve().parent.parent / "pretrained"


def shipped_taggers() -> dict[str, Path]:
    """Shipped tagger name -> file (``pretrained/tagger_<name>.safetensors``)."""
    return {f.stem.removeprefix("tagger_"): f
            for f in sorted(pretrained_dir().glob("tagger_*.safetensors"))}


def load_tagger(name_or_path: str | os.PathLike[str]) -> nn.Module:
    """A shipped tagger by name (see :func:`shipped_taggers`) or any tagger checkpoint by path,
    in eval mode.

    Raises:
        CheckpointError: unknown name, unreadable file, or a checkpoint that is not a tagger.
    """
    from audiofcn.models import CheckpointError, load_model

    shipped = shipped_taggers()
    if str(name_or_path) in shipped:
        return load_model(shipped[str(name_or_path)]).eval()
    p = Path(name_or_path)
    if p.suffix == ".safetensors" or p.exists():
        model = load_model(p).eval()
        if not hasattr(model.config, "labels"):
            raise CheckpointError(f"{p}: a {model.model_name!r} model is not a tagger")
        return model
    raise CheckpointError(f"unknown tagger {str(name_or_path)!r}; shipped: "
                          f"{sorted(shipped) or 'none'} (or give a .safetensors path)")


__all__ = ["DEFAULT_TAGGER", "MODEL_CARDS", "ModelCard", "load_tagger", "pretrained_dir",
           "shipped_taggers"]
