"""Read a track block by block and cut it into model chunks, so memory stays flat.

A 60-minute 44.1 kHz stereo file is 1.3 GB as float64 and 635 MB as float32; tagging it needs
only one block of audio and one batch of chunks at a time. Blocks are decoded with soundfile,
mixed to mono and resampled by a streaming soxr resampler (high quality, no seams at block
borders), then :func:`stream_chunks` yields exactly the chunks that
:func:`audiofcn.tagging.inference.chunk_audio` would cut from the whole track.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audiofcn.io import AudioError, audio_info


def read_blocks(path: str | os.PathLike[str], sr: int,
                block_seconds: float = 60.0) -> Iterator[torch.Tensor]:
    """Mono float32 ``(samples,)`` blocks of ``path`` at ``sr`` Hz, in order.

    Raises:
        AudioError: missing/unreadable/corrupt file, no samples, NaN or Inf samples.
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    info = audio_info(p)  # validates: exists, readable, not a truncated WAV
    block = max(1, int(block_seconds * info.sample_rate))
    stream = None if info.sample_rate == sr else soxr.ResampleStream(
        info.sample_rate, sr, 1, dtype="float32", quality="HQ")
    n_read = 0
    try:
        with sf.SoundFile(str(p)) as f:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                last = data.shape[0] < block
                n_read += data.shape[0]
                if not np.isfinite(data).all():
                    raise AudioError(p, "contains NaN or Inf samples")
                mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                if stream is not None:
                    mono = stream.resample_chunk(np.ascontiguousarray(mono), last=last)
                if mono.size:
                    yield torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
                if last:
                    break
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(p, f"cannot decode audio ({str(err).split(':')[-1].strip()})") from None
    if n_read == 0:
        raise AudioError(p, "no audio samples (zero length)")


def stream_chunks(blocks: Iterable[torch.Tensor], length: int, hop: int | None = None,
                  tail: str = "pad") -> Iterator[torch.Tensor]:
    """``(n, length)`` batches of chunks from consecutive blocks; together they equal
    ``chunk_audio(torch.cat(blocks), length, hop, tail)`` (at least one chunk)."""
    if tail not in ("pad", "end"):
        raise ValueError(f"unknown tail {tail!r} ('pad' or 'end')")
    hop = hop or length
    recent = torch.zeros(0)  # the last `length` samples seen, for tail="end"
    buf = torch.zeros(0)
    total = emitted = skip = 0  # skip: samples to drop before the next chunk start (hop > length)
    for b in blocks:
        b = b.reshape(-1)
        total += b.shape[0]
        recent = torch.cat([recent, b[-length:]])[-length:]
        drop = min(skip, b.shape[0])
        skip -= drop
        buf = torch.cat([buf, b[drop:]])
        n = 0 if buf.shape[0] < length else 1 + (buf.shape[0] - length) // hop
        if n:
            yield buf.unfold(0, length, hop)[:n].clone()
            emitted += n
            skip = max(0, n * hop - buf.shape[0])
            buf = buf[n * hop:]
    # The whole-track rule: chunks start every hop until one reaches the end of the audio.
    # One more (zero-padded) chunk is due if none was emitted, or if samples after the last
    # emitted chunk's start + length remain, i.e. the audio left from the next start exceeds
    # length - hop.
    if emitted == 0 or total - emitted * hop > length - hop:
        if tail == "end" and total > length:
            yield recent.clone()[None]
        else:
            yield F.pad(buf[:length], (0, length - min(length, buf.shape[0])))[None]


__all__ = ["read_blocks", "stream_chunks"]
