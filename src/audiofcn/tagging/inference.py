"""Tag whole tracks: chunk, batch, average.

A track is cut into chunks of the model's ``input_length`` (the last one zero-padded; a hop
shorter than the chunk gives overlapping chunks), the chunks go through the model in batches,
and the chunk probabilities are averaged into track-level scores, as in the evaluation
protocol of the tagging papers. Models are any audiofcn tagger: their config has
``labels``, ``multi_label``, ``sample_rate`` and ``input_length``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.io import AudioError
from audiofcn.io.stream import read_mono_blocks
from audiofcn.tagging.stream import stream_chunks_with_lengths


def chunk_audio(audio: torch.Tensor, length: int, hop: int | None = None,
                tail: str = "pad") -> torch.Tensor:
    """``(time,)`` -> ``(n_chunks, length)``: chunks start every ``hop`` samples until one
    reaches the end of the audio.

    ``tail="pad"`` zero-pads that last chunk; ``tail="end"`` replaces it, when the track is
    longer than one chunk, by the window that ends at the track's end (no silence is averaged
    in). A track shorter than one chunk gives one zero-padded chunk either way.
    """
    if tail not in ("pad", "end"):
        raise ValueError(f"unknown tail {tail!r} ('pad' or 'end')")
    hop = hop or length
    t = audio.shape[-1]
    n = 1 if t <= length else 1 + -(-(t - length) // hop)
    padded = F.pad(audio, (0, (n - 1) * hop + length - t))
    chunks = padded.unfold(-1, length, hop)
    if tail == "end" and t > length and (n - 1) * hop + length > t:
        chunks = torch.cat([chunks[:-1], audio[..., t - length:].unsqueeze(-2)], dim=-2)
    return chunks


def chunk_lengths(t: int, length: int, hop: int | None = None,
                  tail: str = "pad") -> torch.Tensor:
    """``(n_chunks,)`` samples of real audio in each chunk of :func:`chunk_audio` (the rest
    is zero padding)."""
    hop = hop or length
    n = 1 if t <= length else 1 + -(-(t - length) // hop)
    valid = (t - torch.arange(n) * hop).clamp(max=length)
    if tail == "end" and t > length:
        valid[-1] = length
    return valid


def model_logits(model: nn.Module, chunks: torch.Tensor,
                 lengths: torch.Tensor | None = None) -> torch.Tensor:
    """``model(chunks)``; models that take ``lengths`` (the CRNN, the FCN) get the valid
    samples of each chunk, so they skip the frames of the zero padding (same output)."""
    if lengths is not None and hasattr(model, "conv_padded") and \
            bool((lengths < chunks.shape[-1]).any()):
        return model(chunks, lengths=lengths.to(chunks.device))
    return model(chunks)


def probabilities(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid for multi-label models, softmax for single-label ones."""
    if getattr(model.config, "multi_label", True):
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=-1)


@torch.inference_mode()
def predict_chunks(model: nn.Module, audio: torch.Tensor, batch_size: int = 16,
                   hop: int | None = None, tail: str = "pad") -> torch.Tensor:
    """Chunk probabilities of one track.

    Args:
        model: a tagger in eval mode.
        audio: ``(time,)`` or ``(1, time)`` at the model's sample rate.

    Returns:
        ``(n_chunks, n_labels)`` probabilities.
    """
    audio = audio.reshape(-1)
    chunks = chunk_audio(audio, model.config.input_length, hop, tail)
    lengths = chunk_lengths(audio.shape[0], model.config.input_length, hop, tail)
    device = next(model.parameters()).device
    out = [probabilities(model, model_logits(model, chunks[i:i + batch_size].to(device),
                                             lengths[i:i + batch_size])).cpu()
           for i in range(0, chunks.shape[0], batch_size)]
    return torch.cat(out)


def predict_track(model: nn.Module, audio: torch.Tensor, batch_size: int = 16,
                  hop: int | None = None, tail: str = "pad") -> torch.Tensor:
    """``(n_labels,)`` track-level probabilities: the mean over chunks (see
    :func:`chunk_audio` for ``tail``)."""
    return predict_chunks(model, audio, batch_size, hop, tail).mean(dim=0)


@dataclass
class TrackTags:
    """Tagging result of one file: ``scores`` maps every label to its track-level probability."""

    path: str
    duration: float
    scores: dict[str, float] = field(default_factory=dict)

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]


MIN_SECONDS = 0.05  # shorter files are reported, not tagged (a few STFT frames at most)
SILENCE_PEAK = 1e-5  # -100 dBFS


@torch.inference_mode()
def tag_file(model: nn.Module, path: str | os.PathLike[str], batch_size: int = 16,
             hop: int | None = None, block_seconds: float = 60.0,
             tail: str = "end") -> TrackTags:
    """Tag one file, reading it block by block (memory does not grow with its length).

    The file is mixed to mono and resampled to the model's rate (soxr, high quality); the
    scores are the mean chunk probabilities, equal to :func:`predict_track` on the whole
    decoded track. ``tail="end"`` (default here): the last chunk of a track longer than one
    chunk is the window ending at the track's end, not a zero-padded one.

    Raises:
        AudioError: the file cannot be read as audio, is shorter than ``MIN_SECONDS`` or is
            silent (peak below ``SILENCE_PEAK``).
    """
    cfg = model.config
    device = next(model.parameters()).device
    blocks = read_mono_blocks(path, cfg.sample_rate, block_seconds)
    total, n_chunks, n_samples, peak = None, 0, 0, 0.0

    def counted() -> Iterator[torch.Tensor]:
        nonlocal n_samples, peak
        for b in blocks:
            n_samples += b.shape[0]
            peak = max(peak, float(b.abs().max())) if b.numel() else peak
            yield b

    for chunks, lengths in stream_chunks_with_lengths(counted(), cfg.input_length, hop, tail):
        for k in range(0, chunks.shape[0], batch_size):
            p = probabilities(model, model_logits(model, chunks[k:k + batch_size].to(device),
                                                  lengths[k:k + batch_size])).cpu()
            total = p.sum(0) if total is None else total + p.sum(0)
            n_chunks += p.shape[0]
    assert total is not None  # stream_chunks always yields at least one chunk
    # A model scores anything it is given, silence too: report such files instead of tags.
    if n_samples < MIN_SECONDS * cfg.sample_rate:
        raise AudioError(path, f"too short to tag ({n_samples} samples at {cfg.sample_rate} Hz; "
                               f"at least {MIN_SECONDS:g} s needed)")
    if peak < SILENCE_PEAK:
        raise AudioError(path, "silent (every sample below -100 dBFS): nothing to tag")
    probs = total / n_chunks
    return TrackTags(str(path), n_samples / cfg.sample_rate,
                     {lab: float(q) for lab, q in zip(cfg.labels, probs, strict=True)})


def tag_files(model: nn.Module, files: Iterable[Path], batch_size: int = 16,
              hop: int | None = None, block_seconds: float = 60.0,
              tail: str = "end") -> Iterator[TrackTags | AudioError]:
    """Tag each file in turn (see :func:`tag_file`), yielding a :class:`TrackTags` or, for a
    file that cannot be read, its :class:`AudioError` (so the caller can keep going)."""
    for f in files:
        try:
            yield tag_file(model, f, batch_size, hop, block_seconds, tail)
        except AudioError as err:
            yield err


@torch.inference_mode()
def embed(model: nn.Module, audio: torch.Tensor, batch_size: int = 16,
          hop: int | None = None, tail: str = "end") -> torch.Tensor:
    """``(n_dims,)`` track embedding: the model's penultimate features (``model.embed``)
    averaged over chunks (the CRNN's last GRU state, the FCN's pooled last conv layer)."""
    audio = audio.reshape(-1)
    chunks = chunk_audio(audio, model.config.input_length, hop, tail)
    lengths = chunk_lengths(audio.shape[0], model.config.input_length, hop, tail)
    device = next(model.parameters()).device
    out = []
    for i in range(0, chunks.shape[0], batch_size):
        x, n = chunks[i:i + batch_size].to(device), lengths[i:i + batch_size]
        padded = hasattr(model, "conv_padded") and bool((n < x.shape[-1]).any())
        out.append((model.embed(x, n.to(device)) if padded else model.embed(x)).cpu())
    return torch.cat(out).mean(dim=0)


__all__ = ["TrackTags", "chunk_audio", "chunk_lengths", "embed", "model_logits",
           "predict_chunks", "predict_track", "probabilities", "tag_file", "tag_files"]
