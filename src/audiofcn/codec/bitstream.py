"""The ``.afc`` file format: versioned, self-describing, checksummed, no pickle.

Layout (all integers big-endian)::

    magic      4 bytes   b"AFCC"
    version    1 byte    FORMAT_VERSION
    hlen       4 bytes   length of the JSON header in bytes
    header     hlen      UTF-8 JSON: model, model_id, sample_rate, hop_length, frame_rate,
                         n_q, codebook_bits, num_frames, length (samples), denoise
    payload    ceil(num_frames * n_q * codebook_bits / 8) bytes: the codes bit-packed MSB first,
               frame-major (all n_q codes of frame 0, then frame 1, ...), so a stream can be
               cut at any frame boundary; the last byte is zero-padded
    crc32      4 bytes   CRC-32 (zlib) of everything before it

The payload bitrate is exactly ``n_q * codebook_bits * frame_rate``; header and CRC are a fixed
overhead per file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from audiofcn.io.audio import AudioError, atomic_output

MAGIC = b"AFCC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sBI")  # magic, version, header length
_CRC = struct.Struct(">I")
MAX_HEADER = 1 << 16


class BitstreamError(AudioError):
    """A ``.afc`` file is truncated, corrupted, of another version or for another model;
    ``str(err)`` is one line, ``"<path>: <problem>"`` (an :class:`AudioError`, so every CLI
    reports it as bad input)."""


@dataclass
class CodecHeader:
    model: str
    model_id: str
    sample_rate: int
    hop_length: int
    n_q: int
    codebook_bits: int
    num_frames: int
    length: int  # samples of audio the codes represent (the decoder trims to this)
    denoise: bool = False

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def payload_bits(self) -> int:
        return self.num_frames * self.n_q * self.codebook_bits

    @property
    def payload_bytes(self) -> int:
        return math.ceil(self.payload_bits / 8)

    @property
    def bitrate(self) -> float:
        """Payload bits per second of the code stream: ``n_q * bits * frame_rate``."""
        return self.n_q * self.codebook_bits * self.frame_rate

    def to_json(self) -> bytes:
        d = asdict(self)
        d["frame_rate"] = self.frame_rate
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()


def model_fingerprint(model: torch.nn.Module) -> str:
    """16 hex digits identifying a model's weights and codebooks (the ``model_id``)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_CHUNK_FRAMES = 8192  # pack/unpack this many frames at a time (a multiple of 8: whole bytes)


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """``(n_q, frames)`` ints in ``[0, 2^bits)`` -> bytes, frame-major, MSB first."""
    if codes.size and (int(codes.max()) >= 1 << bits or int(codes.min()) < 0):
        raise ValueError(f"code {int(codes.max())} does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    out = []
    for i in range(0, max(codes.shape[1], 1), _CHUNK_FRAMES):  # bounded memory on long files
        flat = np.ascontiguousarray(codes[:, i:i + _CHUNK_FRAMES].T).reshape(-1) \
            .astype(np.uint32)
        bitarr = ((flat[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)
        out.append(np.packbits(bitarr).tobytes())
    return b"".join(out)


def unpack_codes(data: bytes, n_q: int, frames: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: bytes -> ``(n_q, frames)`` int64."""
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.int64)
    out = np.empty((n_q, frames), dtype=np.int64)
    step = _CHUNK_FRAMES * n_q * bits // 8
    raw = np.frombuffer(data, dtype=np.uint8)
    for j, i in enumerate(range(0, frames, _CHUNK_FRAMES)):
        m = min(_CHUNK_FRAMES, frames - i)
        bitarr = np.unpackbits(raw[j * step:j * step + step])[:m * n_q * bits]
        flat = bitarr.reshape(-1, bits).astype(np.int64) @ weights
        out[:, i:i + m] = flat.reshape(m, n_q).T
    return out


def encode_bytes(header: CodecHeader, codes: np.ndarray) -> bytes:
    """The whole file as bytes; ``codes`` ``(n_q, num_frames)``."""
    if codes.shape != (header.n_q, header.num_frames):
        raise ValueError(f"codes of shape {codes.shape} do not match the header "
                         f"({header.n_q}, {header.num_frames})")
    head = header.to_json()
    body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head)) + head + \
        pack_codes(codes, header.codebook_bits)
    return body + _CRC.pack(zlib.crc32(body))


def write_afc(path: str | os.PathLike[str], header: CodecHeader, codes: np.ndarray) -> int:
    """Write a ``.afc`` file atomically; returns its size in bytes."""
    data = encode_bytes(header, codes)
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(data)
    return len(data)


def decode_bytes(data: bytes, name: str = "<bytes>") -> tuple[CodecHeader, np.ndarray]:
    """Parse and validate a file's bytes -> (header, codes ``(n_q, num_frames)``)."""

    def fail(problem: str) -> BitstreamError:
        return BitstreamError(name, problem)

    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise fail("not an audiofcn codec file (bad magic bytes)")
    if len(data) < _PREFIX.size + _CRC.size:
        raise fail(f"truncated file ({len(data)} bytes)")
    _, version, hlen = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise fail(f"unsupported format version {version} (this audiofcn reads version "
                   f"{FORMAT_VERSION})")
    crc_ok = zlib.crc32(data[:-_CRC.size]) == _CRC.unpack_from(data, len(data) - _CRC.size)[0]
    if hlen > MAX_HEADER:
        raise fail("corrupted header length")
    if len(data) < _PREFIX.size + hlen + _CRC.size:
        raise fail(f"truncated file ({len(data)} bytes, header alone needs "
                   f"{_PREFIX.size + hlen + _CRC.size})")
    try:
        fields = json.loads(data[_PREFIX.size:_PREFIX.size + hlen].decode())
        fields.pop("frame_rate", None)
        header = CodecHeader(**fields)
        if min(header.n_q, header.codebook_bits, header.hop_length, header.sample_rate) < 1 \
                or header.num_frames < 0 or header.length < 0 or header.codebook_bits > 24:
            raise ValueError("out-of-range header field")
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as err:
        raise fail("corrupted header" + ("" if crc_ok else " (CRC32 mismatch)") +
                   f": {err}") from None
    expected = _PREFIX.size + hlen + header.payload_bytes + _CRC.size
    if len(data) < expected:
        raise fail(f"truncated file ({len(data)} of {expected} bytes)")
    if len(data) > expected:
        raise fail(f"corrupted file ({len(data) - expected} unexpected trailing bytes)")
    if not crc_ok:
        raise fail("corrupted file (CRC32 mismatch)")
    start = _PREFIX.size + hlen
    codes = unpack_codes(data[start:start + header.payload_bytes], header.n_q,
                         header.num_frames, header.codebook_bits)
    return header, codes


def read_afc(path: str | os.PathLike[str]) -> tuple[CodecHeader, np.ndarray]:
    """Read and validate a ``.afc`` file; raises :class:`BitstreamError` with a one-line
    message on any problem."""
    p = Path(path)
    if not p.is_file():
        raise BitstreamError(p, "file not found")
    return decode_bytes(p.read_bytes(), str(p))
