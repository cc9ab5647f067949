"""Block-wise audio reading and incremental atomic writing, for inputs of any length.

:func:`read_blocks` validates a file as :func:`~audiofcn.io.audio.load_audio` does (header,
NaN/Inf, truncation, empty) but yields ``(channels, frames)`` float32 blocks, so memory is
bounded by the block. :class:`AudioWriter` appends blocks to a hidden temporary file that is
renamed into place only when the block of code that writes it succeeds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import soundfile as sf
import torch

from audiofcn.io.audio import (
    AudioError,
    AudioInfo,
    _open_info,
    atomic_output,
    frames_unknown,
    read_frames,
)

EXACT_LENGTH_FORMATS = ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64")
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def _blocks(path: Path, info: sf._SoundFileInfo, block_frames: int) -> Iterator[np.ndarray]:
    total = 0
    unknown = frames_unknown(info.frames)
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                data = read_frames(f, block_frames, unknown)
                if data.shape[0] == 0:
                    break
                if not np.isfinite(data).all():
                    raise AudioError(path, "contains NaN or Inf samples")
                total += data.shape[0]
                yield np.ascontiguousarray(data.T)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(path, f"cannot decode audio ({str(err).split(':')[-1].strip()})") \
            from None
    if total == 0:
        raise AudioError(path, "no audio samples (zero length)")
    if info.format in EXACT_LENGTH_FORMATS and not frames_unknown(info.frames) and \
            total < info.frames:
        raise AudioError(path, f"truncated: header says {info.frames} frames, read {total}")


def read_blocks(path: str | os.PathLike[str], block_frames: int = 1 << 16,
                max_channels: int | None = None) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Header information and an iterator of float32 ``(channels, <= block_frames)`` blocks.

    The header is checked now (AudioError for a missing/corrupt file or more channels than
    ``max_channels``); decoding errors, NaN/Inf samples and truncation are raised as
    :class:`AudioError` while iterating. For a stream of unknown length (a FLAC written live)
    the returned ``frames`` is counted by decoding the file once.
    """
    from audiofcn.io.audio import audio_info

    p = Path(path)
    info = _open_info(p)
    if max_channels is not None and info.channels > max_channels:
        raise AudioError(p, f"unsupported channel count {info.channels} (at most {max_channels})")
    return audio_info(p), _blocks(p, info, int(block_frames))


class StreamResampler:
    """Resample a stream of ``(channels, n)`` float32 blocks; the concatenated output equals
    :func:`~audiofcn.io.audio.resample` of the whole signal (soxr, same quality), except that
    the total length is rounded rather than rounded up. Same rates: blocks pass through."""

    def __init__(self, orig_sr: int, target_sr: int, channels: int) -> None:
        from audiofcn.io.audio import check_sample_rate

        self.orig_sr = check_sample_rate(orig_sr, "input sample rate")
        self.target_sr = check_sample_rate(target_sr, "target sample rate")
        self.channels = channels
        self._stream = None
        if self.orig_sr != self.target_sr:
            import soxr

            self._stream = soxr.ResampleStream(self.orig_sr, self.target_sr, channels,
                                               dtype="float32", quality="HQ")

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        y = self._stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32),
                                        last=last)
        return np.ascontiguousarray(y.T)

    def flush(self) -> np.ndarray:
        return self.push(np.zeros((self.channels, 0), np.float32), last=True)


def read_mono_blocks(path: str | os.PathLike[str], sr: int, block_seconds: float = 30.0
                     ) -> Iterator[torch.Tensor]:
    """The file as mono float32 ``(n,)`` blocks at ``sr`` Hz (about ``block_seconds`` each).

    Concatenated, the blocks equal ``load_audio(path, sr=sr)[0][0]``: same channel mix, same
    soxr filter (run as a stream), same length (rounded up). Memory is bounded by the block,
    so commands read hours of audio this way. Raises :class:`AudioError` as :func:`read_blocks`.
    """
    p = Path(path)
    rate = _open_info(p).samplerate
    info, blocks = read_blocks(p, block_frames=max(1, int(block_seconds * rate)))
    resampler = StreamResampler(info.sample_rate, sr, 1)
    n_in = n_out = 0
    for block in blocks:
        mono = block.mean(axis=0) if block.shape[0] > 1 else block[0]
        n_in += mono.size
        out = resampler.push(mono[None])[0]
        n_out += out.size
        if out.size:
            yield torch.from_numpy(np.ascontiguousarray(out))
    # The whole-signal resampler's length is ceil(n * sr / rate); the stream's is rounded.
    missing = -(-n_in * sr // info.sample_rate) - n_out
    tail = resampler.flush()[0][:max(missing, 0)]
    if missing > tail.size:
        tail = np.concatenate([tail, np.zeros(missing - tail.size, np.float32)])
    if tail.size:
        yield torch.from_numpy(np.ascontiguousarray(tail))


class AudioWriter:
    """Append ``(channels, frames)`` blocks to ``path``, atomically.

    ``with AudioWriter("out.wav", 16000, 1) as w: w.write(block)``: the file appears under its
    name only when the ``with`` block ends without an exception; otherwise the hidden temporary
    file is removed. The format follows the suffix (.wav, .flac, .ogg).
    """

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, channels: int,
                 subtype: str | None = None) -> None:
        self.path = Path(path)
        fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise AudioError(path, "unsupported output format (use .wav, .flac or .ogg)")
        self.format, self.sample_rate, self.channels, self.subtype = \
            fmt, int(sample_rate), int(channels), subtype
        self.frames = 0
        self._stack = contextlib.ExitStack()
        self._file: sf.SoundFile | None = None

    def __enter__(self) -> AudioWriter:
        tmp = self._stack.enter_context(atomic_output(self.path))
        try:
            self._file = sf.SoundFile(str(tmp), "w", self.sample_rate, self.channels,
                                      subtype=self.subtype, format=self.format)
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            self._stack.close()
            raise AudioError(self.path, f"cannot write audio ({err})") from None
        return self

    def write(self, block: torch.Tensor | np.ndarray) -> None:
        """``(channels, frames)`` float block (torch or NumPy)."""
        data = block.detach().cpu().numpy() if isinstance(block, torch.Tensor) else \
            np.asarray(block)
        if data.ndim != 2 or data.shape[0] != self.channels:
            raise ValueError(f"expected a ({self.channels}, frames) block, got "
                             f"{tuple(data.shape)}")
        if not np.isfinite(data).all():
            raise AudioError(self.path, "refusing to write NaN or Inf samples")
        assert self._file is not None, "use AudioWriter in a with statement"
        try:
            self._file.write(np.ascontiguousarray(data.T, dtype=np.float32))
        except (sf.LibsndfileError, RuntimeError) as err:  # e.g. the disk is full
            raise AudioError(self.path, f"cannot write audio ({err})") from None
        self.frames += data.shape[1]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()
        if exc_type is None and self.frames == 0:
            exc = AudioError(self.path, "refusing to write zero-length audio")
            self._stack.__exit__(type(exc), exc, None)
            raise exc
        self._stack.__exit__(exc_type, exc, tb)


__all__ = ["AudioWriter", "StreamResampler", "read_blocks"]
