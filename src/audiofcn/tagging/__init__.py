"""Music tagging: whole-track inference, the shipped-model registry, ported-weight loaders.

``inference`` cuts tracks into chunks and averages chunk probabilities; ``registry`` knows the
shipped taggers (vocabulary, training data, licence); ``keras_port`` reads the published
Keras-1 weights of Choi et al.'s MSD-50 taggers (needs h5py; imported on use).
"""

from audiofcn.tagging.inference import (
    TrackTags,
    chunk_audio,
    chunk_lengths,
    embed,
    model_logits,
    predict_chunks,
    predict_track,
    probabilities,
    tag_file,
    tag_files,
)
from audiofcn.tagging.registry import (
    DEFAULT_TAGGER,
    MODEL_CARDS,
    ModelCard,
    load_tagger,
    pretrained_dir,
    shipped_taggers,
)

__all__ = ["DEFAULT_TAGGER", "MODEL_CARDS", "ModelCard", "TrackTags",
           "chunk_audio", "chunk_lengths", "embed", "load_tagger", "model_logits", "predict_chunks",
           "predict_track", "pretrained_dir", "probabilities", "shipped_taggers", "tag_file",
           "tag_files"]
