"""Who spoke when: VAD -> sliding-window embeddings -> clustering -> smoothed segments.

Long files are read and embedded in chunks (``chunk_seconds`` of audio at a time), so memory
grows only with the number of windows (``dim`` floats per ``hop`` seconds) and the 10-ms speech
mask, not with the audio; clustering works on at most ``max_points`` windows
(:mod:`audiofcn.diarization.clustering`).

Limit: one speaker per instant. Overlapped speech is given to one of the talkers (whichever the
nearest window's cluster is), so every overlapped second counts as missed speech in the DER;
``recipes/diarization/evaluate.py`` measures what that costs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from audiofcn.diarization.clustering import ClusteringConfig, assign, cluster
from audiofcn.diarization.embedders import RCNNEmbedder, WindowEmbedder
from audiofcn.diarization.vad import FRAME_HOP, VADConfig, energy_vad


@dataclass
class DiarizationConfig:
    window: float = 1.5
    hop: float = 0.25
    chunk_seconds: float = 120.0
    min_speech_in_window: float = 0.5  # windows with less speech are not clustered
    # a cluster whose windows hold less speech than this on average (windows over pauses and
    # turn changes that cluster together) is dissolved into the others. 0 = off (default; it
    # assumes long turns: it lost on the meeting-like validation condition and on AMI)
    min_cluster_speech: float = 0.0
    smooth_windows: int = 5  # mode filter over consecutive window labels (odd; 1 = none)
    # multi-scale embeddings (NeMo-style): window lengths in seconds, each centred on the
    # ``window`` windows (which must be one of them), cosine similarities averaged with
    # ``scale_weights`` (equal if empty); () = the ``window`` embedding only. Needs an embedder
    # with ``embed_scales`` (the RCNN: the conv stack runs once, only the GRU per scale)
    scales: tuple[float, ...] = ()
    scale_weights: tuple[float, ...] = ()
    # each clustered window's embedding is averaged with those of the clustered windows within
    # +-``context`` hops inside the same VAD speech region (0 = off). 2 (+-0.5 s) won on DER
    # and exact count on all four validation conditions (docs/diarization.md)
    context: int = 2
    min_segment: float = 0.25  # shorter turns are merged into their neighbours
    vad: VADConfig = field(default_factory=VADConfig)
    clustering: ClusteringConfig = field(default_factory=ClusteringConfig)


@dataclass
class Segment:
    start: float
    end: float
    speaker: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Diarization:
    uri: str
    duration: float
    segments: list[Segment]
    num_speakers: int
    centroids: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "duration": round(self.duration, 3),
                "num_speakers": self.num_speakers,
                "segments": [{"start": round(s.start, 3), "end": round(s.end, 3),
                              "speaker": s.speaker} for s in self.segments]}


def _chunks(source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None, sr: int,
            chunk: int, extra: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start sample, audio)`` at ``sr``: ``chunk`` new samples plus ``extra`` samples of
    look-ahead (so windows that straddle the chunk end are complete)."""
    if isinstance(source, np.ndarray):
        x = source.astype(np.float32).reshape(-1)
        if sample_rate is None:
            raise ValueError("sample_rate is required for in-memory audio")
        if sample_rate != sr:
            import torch

            from audiofcn.io.audio import resample
            x = resample(torch.from_numpy(x)[None], sample_rate, sr)[0].numpy()
        for s in range(0, max(1, len(x)), chunk):
            yield s, x[s:s + chunk + extra]
        return
    import soundfile as sf
    import torch

    from audiofcn.io.audio import audio_info, resample

    info = audio_info(source)  # raises AudioError (one line) on bad files
    fsr = info.sample_rate
    with sf.SoundFile(str(source)) as f:
        total = f.frames
        s = 0
        while s < max(1, int(round(total * sr / fsr))):
            a = int(round(s * fsr / sr))
            f.seek(a)
            n = int(round((chunk + extra) * fsr / sr))
            x = f.read(n, dtype="float32", always_2d=True).mean(1)
            if not np.isfinite(x).all():
                from audiofcn.io.audio import AudioError
                raise AudioError(source, "contains NaN or Inf samples")
            if fsr != sr:
                x = resample(torch.from_numpy(x)[None], fsr, sr)[0].numpy()
            yield s, x
            s += chunk


def _mode_filter(labels: np.ndarray, width: int) -> np.ndarray:
    if width <= 1 or len(labels) < 3:
        return labels
    half = width // 2
    k = labels.max() + 1
    onehot = np.eye(k)[labels]
    c = np.concatenate([np.zeros((1, k)), np.cumsum(onehot, 0)])
    idx = np.arange(len(labels))
    lo, hi = np.maximum(0, idx - half), np.minimum(len(labels), idx + half + 1)
    return np.argmax(c[hi] - c[lo], axis=1)


def _segments(frame_labels: np.ndarray, min_len: int) -> list[tuple[int, int, int]]:
    """Runs ``(start, end, label)`` of ``frame_labels`` (-1 = non-speech), short runs merged
    into the neighbour they touch (the longer one)."""
    runs: list[list[int]] = []
    for i, lab in enumerate(frame_labels):
        if runs and runs[-1][2] == lab and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1, int(lab)])
    changed = True
    while changed:
        changed = False
        for j, (s, e, lab) in enumerate(runs):
            if lab < 0 or e - s >= min_len:
                continue
            nbrs = [k for k in (j - 1, j + 1) if 0 <= k < len(runs) and runs[k][2] >= 0
                    and (runs[k][1] == s or runs[k][0] == e)]
            if nbrs:
                k = max(nbrs, key=lambda k: runs[k][1] - runs[k][0])
                runs[j][2] = runs[k][2]
                merged: list[list[int]] = []
                for r in runs:
                    if merged and merged[-1][2] == r[2] and merged[-1][1] == r[0]:
                        merged[-1][1] = r[1]
                    else:
                        merged.append(list(r))
                runs = merged
                changed = True
                break
    return [(s, e, lab) for s, e, lab in runs if lab >= 0]


def _drop_pause_clusters(x: np.ndarray, labels: np.ndarray, share: np.ndarray, lo: int,
                         c: DiarizationConfig) -> np.ndarray:
    ks = np.unique(labels)
    mean = np.array([share[labels == k].mean() for k in ks])
    drop = [k for k in ks[np.argsort(mean)] if mean[ks == k][0] < c.min_cluster_speech]
    keep = ~np.isin(labels, drop[: max(0, len(ks) - lo)])
    if keep.all() or not keep.any():
        return labels
    return assign(x, x[keep], labels[keep], c.clustering)


def _scale_index(c: DiarizationConfig) -> int:
    near = [i for i, s in enumerate(c.scales) if abs(s - c.window) < 1e-6]
    if not near:
        raise ValueError(f"scales {c.scales} must include the window length {c.window}")
    return near[0]


def _scale_weights(c: DiarizationConfig) -> np.ndarray:
    """Normalised scale weights (sum 1); checks the multi-scale settings."""
    if not c.scales:
        return np.ones(1)
    _scale_index(c)
    w = np.asarray(c.scale_weights or [1.0] * len(c.scales), dtype=np.float64)
    if len(w) != len(c.scales) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"scale_weights {c.scale_weights} must be one non-negative weight per "
                         f"scale {c.scales}, not all zero")
    return w / w.sum()


def _context_average(x: np.ndarray, center_frames: np.ndarray, mask: np.ndarray, width: int,
                     hop_frames: int) -> np.ndarray:
    """Mean of each window's unit embedding and those of the windows at most ``width`` hops
    away whose centres lie in the same speech region of ``mask`` (time-ordered windows)."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    starts = np.diff(np.concatenate([[0], mask.astype(np.int8)])) == 1
    region = np.where(mask, np.cumsum(starts), -1)
    cf = np.clip(center_frames, 0, max(0, len(mask) - 1))
    r = region[cf] if len(mask) else np.full(len(x), -1)
    out = x.copy()
    for d in range(1, width + 1):
        for a, b in ((slice(d, None), slice(None, -d)), (slice(None, -d), slice(d, None))):
            ok = (r[a] == r[b]) & (r[a] >= 0) & (np.abs(cf[a] - cf[b]) <= width * hop_frames)
            out[a] += np.where(ok[:, None], x[b], 0.0)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def diarize(source: str | os.PathLike[str] | np.ndarray, sample_rate: int | None = None, *,
            embedder: WindowEmbedder | None = None, num_speakers: int | None = None,
            min_speakers: int = 1, max_speakers: int = 8,
            config: DiarizationConfig | None = None, uri: str | None = None,
            namer: Callable[[dict[str, np.ndarray]], dict[str, str]] | None = None,
            progress: Callable[[float], None] | None = None,
            speech: list[tuple[float, float]] | None = None) -> Diarization:
    """Diarize a file (or ``(time,)`` audio at ``sample_rate``).

    Args:
        embedder: window embedder (default: the shipped ``diarizer_rcnn`` model).
        num_speakers: exact count; otherwise chosen within ``[min_speakers, max_speakers]``.
        namer: maps ``{label: centroid}`` to ``{label: name}`` for labels it recognises
            (enrolled speakers, :class:`audiofcn.diarization.speakers.SpeakerDB`).
        progress: called with seconds of audio done after each chunk.
        speech: known speech regions ``[(start, end)]`` in seconds, used instead of the VAD
            (evaluation with oracle speech activity).

    Returns:
        :class:`Diarization` with time-ordered segments labelled ``SPEAKER_00``... (or names).
    """
    c = config or DiarizationConfig()
    if num_speakers is not None and num_speakers < 1:
        raise ValueError("num_speakers must be >= 1")
    if min_speakers < 1 or max_speakers < min_speakers:
        raise ValueError("need 1 <= min_speakers <= max_speakers")
    weights = _scale_weights(c)
    emb = embedder or RCNNEmbedder.from_pretrained()
    if c.scales and not hasattr(emb, "embed_scales"):
        raise ValueError(f"multi-scale embeddings (scales={c.scales}) need an embedder with "
                         "embed_scales, e.g. the RCNN")
    sr = emb.sample_rate
    win, hop = int(round(c.window * sr)), int(round(c.hop * sr))
    per_chunk = max(1, int(c.chunk_seconds / c.hop))
    chunk = per_chunk * hop
    masks, vecs, starts = [], [], []
    total = 0
    for s, x in _chunks(source, sample_rate, sr, chunk, win - hop):
        own = x[:chunk]
        total = s + len(own)
        n_frames = int(np.ceil(len(own) / (FRAME_HOP * sr)))
        if speech is None:
            masks.append(energy_vad(own, sr, c.vad)[:n_frames])
        else:
            t = s / sr + (np.arange(n_frames) + 0.5) * FRAME_HOP
            masks.append(np.zeros(n_frames, dtype=bool))
            for a, b in speech:
                masks[-1] |= (t >= a) & (t < b)
        if len(x) < win and s == 0:  # shorter than one window: one padded window
            x = np.pad(x, (0, win - len(x)))
        e = (emb.embed_scales(x, c.window, c.hop, c.scales) if c.scales  # type: ignore[attr-defined]
             else emb.embed_chunk(x, c.window, c.hop))[:per_chunk]
        vecs.append(e)
        starts.append(s / sr + np.arange(len(e)) * c.hop)
        if progress is not None:
            progress(len(own) / sr)
    duration = total / sr
    mask = np.concatenate(masks) if masks else np.zeros(0, dtype=bool)
    name = uri or (Path(source).stem if not isinstance(source, np.ndarray) else "audio")
    if not mask.any() or not vecs:
        return Diarization(name, duration, [], 0)
    e_all = np.concatenate(vecs)
    e_base = e_all
    if c.scales:  # (n, S, dim): weighted concatenation, so a dot product is the weighted cosine
        e_base = e_all[:, _scale_index(c)]
        e_all = (e_all * np.sqrt(weights)[None, :, None]).reshape(len(e_all), -1)
    w_start = np.concatenate(starts)
    # speech share of each window, from the 10-ms mask
    cm = np.concatenate([[0], np.cumsum(mask)])
    f0 = np.clip((w_start / FRAME_HOP).round().astype(int), 0, len(mask))
    f1 = np.clip(f0 + int(round(c.window / FRAME_HOP)), 0, len(mask))
    share = (cm[f1] - cm[f0]) / max(1, int(round(c.window / FRAME_HOP)))
    keep = share >= c.min_speech_in_window
    if not keep.any():
        keep = share > 0
    if not keep.any():
        return Diarization(name, duration, [], 0)
    idx = np.nonzero(keep)[0]
    e_clu = e_all[idx] if c.context <= 0 else _context_average(
        e_all[idx], f0[idx] + int(round(c.window / FRAME_HOP)) // 2, mask, c.context,
        int(round(c.hop / FRAME_HOP)))
    labels = cluster(e_clu, num_speakers, min_speakers, max_speakers, c.clustering)
    if c.min_cluster_speech > 0 and num_speakers is None:
        labels = _drop_pause_clusters(e_clu, labels, share[idx], min_speakers, c)
    labels = _mode_filter(labels, c.smooth_windows)
    centers = w_start[idx] + c.window / 2
    # every speech frame takes the label of the nearest clustered window centre
    t = (np.arange(len(mask)) + 0.5) * FRAME_HOP
    j = np.clip(np.searchsorted(centers, t), 1, len(centers) - 1) if len(centers) > 1 \
        else np.zeros(len(t), dtype=int)
    if len(centers) > 1:
        j = np.where(np.abs(centers[j - 1] - t) <= np.abs(centers[j] - t), j - 1, j)
    frame_labels = np.where(mask, labels[j], -1)
    runs = _segments(frame_labels, int(round(c.min_segment / FRAME_HOP)))
    used = sorted({lab for _, _, lab in runs})
    names = {lab: f"SPEAKER_{i:02d}" for i, lab in enumerate(used)}
    x = e_base[idx]  # the ``window`` embeddings (what a speaker catalog holds)
    centroids = {}
    for lab in used:
        m = x[labels == lab].mean(0)
        centroids[names[lab]] = m / max(1e-9, float(np.linalg.norm(m)))
    if namer is not None:
        rename = namer(centroids)
        names = {lab: rename.get(n, n) for lab, n in names.items()}
        centroids = {rename.get(k, k): v for k, v in centroids.items()}
    segs = [Segment(s * FRAME_HOP, min(duration, e * FRAME_HOP), names[lab])
            for s, e, lab in runs]
    return Diarization(name, duration, segs, len(used), centroids)
