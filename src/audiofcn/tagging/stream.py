"""Cut a track read block by block into model chunks, so memory stays flat.

A 60-minute 44.1 kHz stereo file is 1.3 GB as float64 and 635 MB as float32; tagging it needs
only one block of audio and one batch of chunks at a time. Blocks come from
:func:`audiofcn.io.stream.read_mono_blocks` (mono, streaming soxr, no seams at block borders),
then :func:`stream_chunks` yields exactly the chunks that
:func:`audiofcn.tagging.inference.chunk_audio` would cut from the whole track.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F


def stream_chunks(blocks: Iterable[torch.Tensor], length: int, hop: int | None = None,
                  tail: str = "pad") -> Iterator[torch.Tensor]:
    """``(n, length)`` batches of chunks from consecutive blocks; together they equal
    ``chunk_audio(torch.cat(blocks), length, hop, tail)`` (at least one chunk)."""
    for chunks, _ in stream_chunks_with_lengths(blocks, length, hop, tail):
        yield chunks


def stream_chunks_with_lengths(blocks: Iterable[torch.Tensor], length: int,
                               hop: int | None = None, tail: str = "pad"
                               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`stream_chunks` with each batch's ``(n,)`` valid samples per chunk (``length``
    except for a zero-padded last chunk), so a model can skip the padding's frames."""
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
            yield buf.unfold(0, length, hop)[:n].clone(), torch.full((n,), length)
            emitted += n
            skip = max(0, n * hop - buf.shape[0])
            buf = buf[n * hop:]
    # The whole-track rule: chunks start every hop until one reaches the end of the audio.
    # One more (zero-padded) chunk is due if none was emitted, or if samples after the last
    # emitted chunk's start + length remain, i.e. the audio left from the next start exceeds
    # length - hop.
    if emitted == 0 or total - emitted * hop > length - hop:
        if tail == "end" and total > length:
            yield recent.clone()[None], torch.tensor([length])
        else:
            valid = min(length, buf.shape[0])
            yield F.pad(buf[:length], (0, length - valid))[None], torch.tensor([valid])


__all__ = ["stream_chunks", "stream_chunks_with_lengths"]
