"""Models. Each has a config dataclass, documented ``forward`` shapes, ``serialize()`` and
``from_pretrained(path)``. :func:`load_model` rebuilds any of them from a checkpoint file."""

from __future__ import annotations

import importlib
import os
from typing import Any

from audiofcn.models.base import CheckpointError, PretrainedModel, read_checkpoint

# model_name -> "module:Class", imported on use so `import audiofcn.models` stays light.
MODEL_REGISTRY: dict[str, str] = {
    "fcn": "audiofcn.models.fcn:FCN",
    "crnn": "audiofcn.models.crnn:CRNN",
    "samplecnn": "audiofcn.models.samplecnn:SampleCNN",
    "rawwave_cnn": "audiofcn.models.rawwave:RawWaveCNN",
    "self_attention_tagger": "audiofcn.models.attention_tagger:SelfAttentionTagger",
    "separator_patch_cnn": "audiofcn.models.separator:PatchSeparator",
    "separator_fcn": "audiofcn.models.separator:FCNSeparator",
    "echo_canceller": "audiofcn.models.echo:EchoCanceller",
    "embedding": "audiofcn.models.embedding:EmbeddingNet",
    "soundstream": "audiofcn.models.soundstream:SoundStream",
    "lyra_soundstream": "audiofcn.models.lyra_soundstream:LyraSoundStream",
    "speaker_rcnn": "audiofcn.models.speaker_rcnn:SpeakerRCNN",
}


def model_class(name: str) -> type[PretrainedModel]:
    if name not in MODEL_REGISTRY:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODEL_REGISTRY)}")
    module, cls = MODEL_REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def load_model(source: str | os.PathLike[str] | dict[str, Any]) -> PretrainedModel:
    """Rebuild whichever model a checkpoint holds."""
    blob = source if isinstance(source, dict) else read_checkpoint(source)
    return model_class(blob["model"]).from_pretrained(blob)


__all__ = ["MODEL_REGISTRY", "CheckpointError", "PretrainedModel", "load_model", "model_class"]
