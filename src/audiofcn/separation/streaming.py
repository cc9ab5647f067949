"""Separation of files of any length in bounded memory: :func:`separate_to_files`.

The file is read in blocks, resampled to the model rate as a stream, cut into the same
overlapping chunks as :func:`~audiofcn.separation.inference.separate` (so the result is the same
as separating the whole file in memory), and both stems are written incrementally to hidden
temporary files that are renamed into place at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiofcn.frontend import ISTFT, STFT
from audiofcn.separation.inference import _fade_weights, chunk_sizes, vocal_chunk


class ChunkedVocals:
    """Push model-rate audio ``(channels, n)`` in blocks of any size; get the vocals of
    :func:`~audiofcn.separation.inference.separate_vocals_at_model_rate` back as soon as no
    later chunk can change them. Memory: one chunk plus one block."""

    def __init__(self, model: Any, channels: int, *, threshold: float | None = None,
                 wiener: bool = False, chunk_seconds: float = 20.0,
                 overlap_seconds: float = 1.0, patch_hop: int = 1) -> None:
        self.model = model
        self.kw = {"threshold": threshold, "wiener": wiener, "patch_hop": patch_hop}
        self.stft, self.istft = STFT(model.config.stft), ISTFT(model.config.stft)
        self.chunk, self.overlap = chunk_sizes(model, chunk_seconds, overlap_seconds)
        self.step = self.chunk - self.overlap
        self.buf = torch.zeros(channels, 0)  # input from the current chunk's start on
        self.acc = torch.zeros(channels, 0)  # weighted estimates, same origin
        self.norm = torch.zeros(0)
        self.first = True

    def _run(self, last: bool) -> torch.Tensor:
        piece = self.buf if last else self.buf[:, : self.chunk]
        n = piece.shape[-1]
        est = vocal_chunk(piece, self.model, self.stft, self.istft, **self.kw)
        w = _fade_weights(n, self.overlap, self.first, last)
        self.first = False
        pad = n - self.acc.shape[-1]
        acc = torch.nn.functional.pad(self.acc, (0, pad)) + est * w
        norm = torch.nn.functional.pad(self.norm, (0, pad)) + w
        k = n if last else self.step
        out = acc[:, :k] / norm[:k].clamp_min(1e-8)
        self.acc, self.norm, self.buf = acc[:, k:], norm[k:], self.buf[:, k:]
        return out

    @torch.inference_mode()
    def push(self, block: torch.Tensor) -> torch.Tensor:
        self.buf = torch.cat([self.buf, block], dim=-1)
        outs = [self.buf.new_zeros(self.buf.shape[0], 0)]
        while self.buf.shape[-1] > self.chunk:  # more input follows: not the last chunk
            outs.append(self._run(last=False))
        return torch.cat(outs, dim=-1)

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        if self.buf.shape[-1] == 0:
            return self.buf
        return self._run(last=True)


def separate_to_files(path: str | os.PathLike[str], vocals_path: Path, accompaniment_path: Path,
                      model: Any, *, threshold: float | None = None, wiener: bool = False,
                      chunk_seconds: float = 20.0, overlap_seconds: float = 1.0,
                      patch_hop: int = 1, read_frames: int | None = None,
                      normalize_integer: bool = True) -> tuple[int, int]:
    """Separate the audio file ``path`` into two files at its rate and channel count.

    Equals :func:`~audiofcn.separation.inference.separate` on the whole file (same chunks), but
    memory is bounded by ``chunk_seconds``. For an integer output format (FLAC) whose stems
    would clip, both stems are scaled by their common peak (``normalize_integer``): they are then
    first written as float WAV temporaries and converted. Returns ``(frames, sample_rate)``.

    Raises:
        AudioError: unreadable input or unwritable output; nothing is left under either name.
    """
    from audiofcn.io.audio import _TEMP_MARK
    from audiofcn.io.stream import AudioWriter, StreamResampler, read_blocks

    model.eval()
    info, blocks = read_blocks(path, block_frames=1)  # header now, blocks sized below
    sr, ch, total = info.sample_rate, info.channels, info.frames
    model_sr = model.config.sample_rate
    _, blocks = read_blocks(path, block_frames=read_frames or max(1, int(chunk_seconds * sr)))
    integer = vocals_path.suffix.lower() == ".flac"
    staged = integer and normalize_integer
    dests = (vocals_path, accompaniment_path)
    targets = [d.parent / f".{d.name}{_TEMP_MARK}{os.getpid()}-stage.wav" if staged else d
               for d in dests]
    subtype = "FLOAT" if staged or not integer else None
    to_model, back = StreamResampler(sr, model_sr, ch), StreamResampler(model_sr, sr, ch)
    sep = ChunkedVocals(model, ch, threshold=threshold, wiener=wiener,
                        chunk_seconds=chunk_seconds, overlap_seconds=overlap_seconds,
                        patch_hop=patch_hop)
    pending = [np.zeros((ch, 0), np.float32)]  # input at file rate awaiting its vocals
    peak = 0.0
    try:
        with AudioWriter(targets[0], sr, ch, subtype) as wv, \
                AudioWriter(targets[1], sr, ch, subtype) as wa:
            def emit(voc: np.ndarray) -> None:
                nonlocal peak
                voc = voc[:, : total - wv.frames]
                n = voc.shape[-1]
                if not n:
                    return
                mix = np.concatenate(pending, axis=-1)
                acc = mix[:, :n] - voc
                pending[:] = [mix[:, n:]]
                peak = max(peak, float(np.abs(voc).max()), float(np.abs(acc).max()))
                wv.write(voc)
                wa.write(acc)

            n_model = 0

            def at_model_rate(x: np.ndarray, last: bool = False) -> None:
                nonlocal n_model
                n_model += x.shape[-1]
                v = sep.push(torch.from_numpy(x))
                if last:
                    v = torch.cat([v, sep.finish()], dim=-1)
                emit(back.push(v.numpy(), last=last))

            for b in blocks:
                pending.append(b)
                at_model_rate(to_model.push(b))
            tail = to_model.flush()
            short = max(0, -(-total * model_sr // sr) - n_model - tail.shape[-1])
            at_model_rate(np.concatenate([tail, np.zeros((ch, short), np.float32)], -1),
                          last=True)
            if wv.frames < total:  # resampling rounds: the missing end is accompaniment
                emit(np.zeros((ch, total - wv.frames), np.float32))
        if staged:
            _convert_scaled(targets, dests, sr, ch, max(peak, 1.0))
    finally:
        if staged:
            for t in targets:
                t.unlink(missing_ok=True)
    return total, sr


def _convert_scaled(sources: list[Path], dests: tuple[Path, ...], sr: int, channels: int,
                    peak: float) -> None:
    """Float WAV stems -> integer-format stems divided by their common ``peak``."""
    from audiofcn.io.stream import AudioWriter, read_blocks

    with AudioWriter(dests[0], sr, channels) as w0, AudioWriter(dests[1], sr, channels) as w1:
        for src, w in zip(sources, (w0, w1), strict=True):
            for b in read_blocks(src)[1]:
                w.write(b / peak)


__all__ = ["ChunkedVocals", "separate_to_files"]
