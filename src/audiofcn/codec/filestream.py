"""Read an audio file block by block, mixed to mono and resampled, in bounded memory.

``audiofcn encode`` reads hours of audio this way. Resampling is torchaudio's (as
:func:`audiofcn.io.resample`) run on each block with enough context on both sides, and blocks
start on the resampler's period, so the concatenated blocks equal resampling the whole file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import soundfile as sf
import torch

from audiofcn.io import AudioError
from audiofcn.io.audio import audio_info, resample


def _mono_blocks(f: sf.SoundFile, size: int, path: str | os.PathLike[str]
                 ) -> Iterator[np.ndarray]:
    while True:
        try:
            data = f.read(size, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(path, f"cannot decode audio ({str(err).split(':')[-1].strip()})"
                             ) from None
        if data.shape[0] == 0:
            return
        if not np.isfinite(data).all():
            raise AudioError(path, "contains NaN or Inf samples")
        yield data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
        if data.shape[0] < size:
            return


def iter_audio_blocks(path: str | os.PathLike[str], sr: int, block_seconds: float = 30.0
                      ) -> Iterator[torch.Tensor]:
    """Yield the file as mono float32 blocks ``(n,)`` at ``sr`` (about ``block_seconds`` each).

    Raises :class:`AudioError` for unreadable files and NaN/Inf samples, like
    :func:`audiofcn.io.load_audio`."""
    info = audio_info(path)  # missing, empty, unreadable or truncated files fail here
    src_sr = info.sample_rate
    g = math.gcd(src_sr, sr)
    period, out_period = src_sr // g, sr // g
    # torchaudio's sinc kernel reaches ``width`` input samples (lowpass_filter_width=6,
    # rolloff=0.99) around each output position; give each block more context than that.
    width = math.ceil(6 * period / (min(period, out_period) * 0.99))
    ctx = period * (math.ceil((width + period) / period) + 1)
    size = max(1, round(block_seconds * src_sr / period)) * period
    size = max(size, ctx)
    with sf.SoundFile(str(path)) as f:
        blocks = _mono_blocks(f, size, path)
        if src_sr == sr:
            for b in blocks:
                yield torch.from_numpy(np.ascontiguousarray(b))
            return
        cur = next(blocks, None)
        left = np.zeros(ctx, np.float32)
        while cur is not None:
            nxt = next(blocks, None)
            right = np.zeros(ctx, np.float32)
            if nxt is not None:
                right[:min(ctx, len(nxt))] = nxt[:ctx]
            x = torch.from_numpy(np.concatenate([left, cur, right]))
            y = resample(x[None], src_sr, sr)[0]
            start = ctx // period * out_period
            n = math.ceil(len(cur) * out_period / period)
            yield y[start:start + n].contiguous()
            left = np.concatenate([left, cur])[-ctx:]
            cur = nxt
