"""Window embedders for the pipeline: the RCNN model and the two baselines of the evaluation.

Each one maps a ``(time,)`` chunk at 16 kHz to ``(n, dim)`` embeddings of windows of
``window`` seconds every ``hop`` seconds (window ``i`` starts at ``i * hop``).
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np
import torch


class WindowEmbedder(Protocol):
    sample_rate: int

    def embed_chunk(self, audio: np.ndarray, window: float, hop: float) -> np.ndarray: ...


def n_windows(n_samples: int, sr: int, window: float, hop: float) -> int:
    w, h = int(round(window * sr)), int(round(hop * sr))
    return 0 if n_samples < w else 1 + (n_samples - w) // h


class RCNNEmbedder:
    """:class:`~audiofcn.models.speaker_rcnn.SpeakerRCNN` with the conv work shared by the
    overlapping windows of a chunk."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model.eval()
        self.sample_rate = model.config.sample_rate
        self.step = model.config.frame_stride * model.config.hop_length / self.sample_rate

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str] | None = None) -> RCNNEmbedder:
        from audiofcn.models.speaker_rcnn import SpeakerRCNN

        return cls(SpeakerRCNN.from_pretrained(path or default_model_path()))

    def _steps(self, seconds: float) -> int:
        steps = seconds / self.step
        if abs(steps - round(steps)) > 1e-6:
            raise ValueError(f"{seconds} s is not a multiple of the model's {self.step} s step")
        return int(round(steps))

    def embed_chunk(self, audio: np.ndarray, window: float, hop: float) -> np.ndarray:
        n = n_windows(len(audio), self.sample_rate, window, hop)
        if n == 0:
            return np.zeros((0, self.model.config.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            emb = self.model.embed_windows(torch.from_numpy(np.ascontiguousarray(audio)),
                                           self._steps(window), self._steps(hop))
        return emb[:n].numpy().astype(np.float32)

    def embed_scales(self, audio: np.ndarray, window: float, hop: float,
                     scales: tuple[float, ...]) -> np.ndarray:
        """``(n, len(scales), dim)``: per window of ``window`` s every ``hop`` s, embeddings of
        windows of each length in ``scales`` (seconds) centred on it, the conv work shared
        (:meth:`~audiofcn.models.speaker_rcnn.SpeakerRCNN.embed_scales`)."""
        n = n_windows(len(audio), self.sample_rate, window, hop)
        if n == 0:
            return np.zeros((0, len(scales), self.model.config.embedding_dim), dtype=np.float32)
        with torch.inference_mode():
            emb = self.model.embed_scales(torch.from_numpy(np.ascontiguousarray(audio)),
                                          self._steps(window), self._steps(hop),
                                          tuple(self._steps(s) for s in scales))
        return emb[:n].numpy().astype(np.float32)


def default_model_path() -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parent.parent / "pretrained" / "diarizer_rcnn.safetensors")


class MFCCStatsEmbedder:
    """Baseline: mean and standard deviation of 20 MFCCs (25-ms frames every 10 ms) over each
    window, standardised per chunk (an i-vector-free stand-in for the classical front end)."""

    sample_rate = 16000

    def embed_chunk(self, audio: np.ndarray, window: float, hop: float) -> np.ndarray:
        import librosa

        n = n_windows(len(audio), self.sample_rate, window, hop)
        if n == 0:
            return np.zeros((0, 40), dtype=np.float32)
        m = librosa.feature.mfcc(y=audio.astype(np.float32), sr=16000, n_mfcc=20, n_fft=400,
                                 hop_length=160, n_mels=40, center=False).T  # (F, 20)
        c1 = np.concatenate([np.zeros((1, 20)), np.cumsum(m, 0)])
        c2 = np.concatenate([np.zeros((1, 20)), np.cumsum(m ** 2, 0)])
        wf, hf = int(round(window * 100)), int(round(hop * 100))
        s = np.minimum(np.arange(n) * hf, max(0, len(m) - 1))
        e = np.minimum(s + wf, len(m))
        cnt = np.maximum(e - s, 1)[:, None]
        mean = (c1[e] - c1[s]) / cnt
        std = np.sqrt(np.maximum((c2[e] - c2[s]) / cnt - mean ** 2, 1e-8))
        feats = np.concatenate([mean, std], 1)
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        return feats.astype(np.float32)


class ResemblyzerEmbedder:
    """Peer: Resemblyzer's GE2E d-vectors (weights in its wheel), one per 1.6-s partial window
    at the pipeline's hop (its windows are 0.1 s longer than ours; the k-th starts at the same
    time as ours)."""

    sample_rate = 16000

    def __init__(self) -> None:
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device="cpu", verbose=False)

    def embed_chunk(self, audio: np.ndarray, window: float, hop: float) -> np.ndarray:
        from resemblyzer import audio as ra

        n = n_windows(len(audio), self.sample_rate, window, hop)
        if n == 0:
            return np.zeros((0, 256), dtype=np.float32)
        mel = ra.wav_to_mel_spectrogram(audio.astype(np.float32))  # (frames, 40), 10-ms hop
        w, h = 160, int(round(hop * 100))
        mel = np.pad(mel, ((0, max(0, (n - 1) * h + w - len(mel))), (0, 0)))
        parts = np.stack([mel[i * h:i * h + w] for i in range(n)])
        with torch.inference_mode():
            out = self.encoder(torch.from_numpy(parts).float()).numpy()
        return out.astype(np.float32)
