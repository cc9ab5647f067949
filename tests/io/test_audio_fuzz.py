"""Property-based fuzz test of the audio loader: random bytes and WAV files with damaged
headers raise :class:`AudioError` (one line) or load as finite float32 audio, nothing else."""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiofcn.io.audio import AudioError, audio_info, load_audio


def _wav(subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    x = 0.3 * np.sin(np.arange(800) / 5.0).astype(np.float32)
    sf.write(buf, np.stack([x, -x], 1), 8000, format="WAV", subtype=subtype)
    return buf.getvalue()


WAVS = [_wav("PCM_16"), _wav("FLOAT"), _wav("PCM_U8")]
HEADER_FIELDS = [(4, "<I"), (20, "<H"), (22, "<H"), (24, "<I"), (28, "<I"), (32, "<H"),
                 (34, "<H"), (40, "<I")]  # RIFF size, format, channels, rate, ..., data size

_damaged_header = st.builds(
    lambda base, field, value, cut: _patch(WAVS[base], *HEADER_FIELDS[field], value)[:cut],
    st.integers(0, len(WAVS) - 1), st.integers(0, len(HEADER_FIELDS) - 1),
    st.integers(0, 2**32 - 1), st.integers(0, 4000))
_flipped = st.builds(
    lambda base, pos, byte: _set(WAVS[base], pos, byte),
    st.integers(0, len(WAVS) - 1), st.integers(0, 60), st.integers(0, 255))


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    value &= (1 << (8 * struct.calcsize(fmt))) - 1
    return data[:offset] + struct.pack(fmt, value) + data[offset + struct.calcsize(fmt):]


def _set(data: bytes, pos: int, byte: int) -> bytes:
    return data[:pos] + bytes([byte]) + data[pos + 1:]


@pytest.fixture(scope="module")
def folder() -> Path:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | _damaged_header | _flipped,
       suffix=st.sampled_from([".wav", ".flac", ".mp3", ".ogg"]))
def test_fuzz_load_audio_raises_only_audio_error(folder: Path, data: bytes, suffix: str) -> None:
    path = folder / f"f{suffix}"
    path.write_bytes(data)
    for fn in (audio_info, lambda p: load_audio(p, mono=False)):
        try:
            out = fn(path)
        except AudioError as err:
            assert str(err).startswith(str(path)) and "\n" not in str(err)
        else:
            if isinstance(out, tuple):
                audio, sr = out
                assert sr > 0 and audio.dtype.is_floating_point and audio.isfinite().all()
