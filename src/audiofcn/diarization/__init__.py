"""Speaker diarization (who spoke when) and speaker search across recordings.

:func:`diarize` runs VAD, sliding-window RCNN speaker embeddings
(:class:`~audiofcn.models.speaker_rcnn.SpeakerRCNN`) and clustering with an automatic speaker
count; :class:`SpeakerDB` enrols and identifies speakers on top of an :mod:`audiofcn.index`
catalog. The training task lives in :mod:`audiofcn.diarization.training`.
"""

from audiofcn.diarization.clustering import ClusteringConfig, cluster
from audiofcn.diarization.embedders import MFCCStatsEmbedder, RCNNEmbedder
from audiofcn.diarization.pipeline import Diarization, DiarizationConfig, Segment, diarize
from audiofcn.diarization.rttm import read_rttm, to_rttm, write_json, write_rttm
from audiofcn.diarization.vad import VADConfig, energy_vad

__all__ = ["ClusteringConfig", "Diarization", "DiarizationConfig", "MFCCStatsEmbedder",
           "RCNNEmbedder", "Segment", "VADConfig", "cluster", "diarize", "energy_vad",
           "read_rttm", "to_rttm", "write_json", "write_rttm"]
