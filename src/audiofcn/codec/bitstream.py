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

import dataclasses
import hashlib
import json
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from audiofcn.io.audio import AudioError, atomic_output

MAGIC = b"AFCC"
FORMAT_VERSION = 1
_PREFIX = struct.Struct(">4sBI")  # magic, version, header length
_CRC = struct.Struct(">I")
MAX_HEADER = 8192  # bytes; a real header is about 250


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
    """16 hex digits identifying a model's weights and codebooks (the ``model_id``): of its
    ``identity_state()`` where it defines one (the tensors that make it that model), else of
    its whole state dict."""
    state = model.identity_state() if hasattr(model, "identity_state") else model.state_dict()
    h = hashlib.sha256()
    for name, t in sorted(state.items()):
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


class _HeaderProblem(Exception):
    """Internal: why a header was refused (becomes the BitstreamError's problem text)."""


@dataclass(frozen=True)
class FieldRule:
    """What one header field may hold: ``kind`` (int, float, str or bool; an int field takes
    only JSON integers, never ``true`` or ``3.0``), an inclusive numeric range, a string length
    limit. ``stored=False`` marks a field written for readers' convenience (``frame_rate``)
    that is checked but not passed to :class:`CodecHeader`."""

    kind: type
    low: float | None = None
    high: float | None = None
    max_len: int = 64
    stored: bool = True

    def check(self, name: str, value: object) -> None:
        if self.kind is int:
            ok = type(value) is int
            what = "an integer"
        elif self.kind is float:
            ok = type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]
            what = "a finite number"
        elif self.kind is bool:
            ok, what = type(value) is bool, "true or false"
        else:
            ok = type(value) is str and len(value) <= self.max_len and value.isprintable()
            what = f"a printable string of at most {self.max_len} characters"
        if ok and self.low is not None and value < self.low:  # type: ignore[operator]
            ok = False
        if ok and self.high is not None and value > self.high:  # type: ignore[operator]
            ok = False
        if not ok:
            if self.low is not None and self.high is not None:
                what += f" in [{self.low:g}, {self.high:g}]"
            raise _HeaderProblem(f"header field {name!r} must be {what}, got {_show(value)}")


# One rule per header field (a new CodecHeader field needs one; tests check that every field
# has a rule). Ranges are generous sanity bounds; the exact payload size and the cross-field
# checks below, then check_compatible() against the model, do the rest.
FIELD_RULES: dict[str, FieldRule] = {
    "model": FieldRule(str),
    "model_id": FieldRule(str),
    "sample_rate": FieldRule(int, 1, 1_000_000),
    "hop_length": FieldRule(int, 1, 1 << 20),
    "n_q": FieldRule(int, 1, 1024),
    "codebook_bits": FieldRule(int, 1, 24),
    "num_frames": FieldRule(int, 1, 1 << 40),  # an encoded file has at least one frame
    "length": FieldRule(int, 1, 1 << 50),
    "denoise": FieldRule(bool),
    "frame_rate": FieldRule(float, 0, 1_000_000, stored=False),
}
CROSS_CHECKS: list[tuple[Callable[[CodecHeader], bool], str]] = [
    (lambda h: h.length <= h.num_frames * h.hop_length,
     "header field 'length' is longer than num_frames * hop_length"),
]
MAX_DEPTH = 2  # the header is one JSON object (a list value would be depth 2); refuse deeper
_MAX_DIGITS = 30  # longer JSON integers are refused before int() (which is quadratic) sees them


@dataclass(frozen=True)
class _LongInt:
    digits: int


def _show(value: object) -> str:
    if isinstance(value, _LongInt):
        return f"an integer of {value.digits} digits"
    text = json.dumps(value) if isinstance(value, float | bool | None) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_depth(text: str) -> int:
    """Deepest ``[``/``{`` nesting outside strings, found without recursion."""
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _parse_int(s: str) -> int | _LongInt:
    return int(s) if len(s) <= _MAX_DIGITS else _LongInt(len(s.lstrip("-")))


def parse_header(raw: bytes) -> CodecHeader:
    """JSON header bytes -> :class:`CodecHeader`, every field checked against
    :data:`FIELD_RULES`; raises :class:`_HeaderProblem` (never anything else) when refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _HeaderProblem("corrupted header (not UTF-8)") from None
    if _json_depth(text) > MAX_DEPTH:
        raise _HeaderProblem(f"corrupted header (nested too deeply; at most {MAX_DEPTH} "
                             "levels)")
    try:  # NaN/Infinity and 1e400 become floats here and are refused by the field rules
        fields = json.loads(text, parse_int=_parse_int)
    except (json.JSONDecodeError, ValueError, RecursionError) as err:
        raise _HeaderProblem(f"corrupted header ({str(err).splitlines()[0][:80]})") from None
    if not isinstance(fields, dict):
        raise _HeaderProblem(f"corrupted header (must be a JSON object, got "
                             f"{type(fields).__name__})")
    unknown = sorted(set(fields) - set(FIELD_RULES))
    if unknown:
        raise _HeaderProblem(f"unknown header field {_show(unknown[0])}")
    defaults = {f.name for f in dataclasses.fields(CodecHeader)
                if f.default is not dataclasses.MISSING}
    kwargs = {}
    for name, rule in FIELD_RULES.items():
        if name not in fields:
            if rule.stored and name not in defaults:
                raise _HeaderProblem(f"missing header field {name!r}")
            continue
        rule.check(name, fields[name])
        if rule.stored:
            kwargs[name] = fields[name]
    header = CodecHeader(**kwargs)
    for ok, problem in CROSS_CHECKS:
        if not ok(header):
            raise _HeaderProblem(problem)
    return header


def decode_bytes(data: bytes, name: str = "<bytes>") -> tuple[CodecHeader, np.ndarray]:
    """Parse and validate a file's bytes -> (header, codes ``(n_q, num_frames)``).

    The CRC is checked before the header is trusted; the header is then parsed with bounded
    size and depth and every field validated (:data:`FIELD_RULES`), so any damaged or hostile
    file raises :class:`BitstreamError` and nothing else."""

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
    if hlen > MAX_HEADER:
        raise fail(f"corrupted header length ({hlen} bytes; at most {MAX_HEADER})")
    start = _PREFIX.size + hlen
    if zlib.crc32(data[:-_CRC.size]) != _CRC.unpack_from(data, len(data) - _CRC.size)[0]:
        raise fail(_explain_bad_crc(data, hlen))
    if len(data) < start + _CRC.size:
        raise fail(f"truncated file ({len(data)} bytes, header alone needs "
                   f"{start + _CRC.size})")
    try:
        header = parse_header(data[_PREFIX.size:start])
    except _HeaderProblem as err:
        raise fail(str(err)) from None
    problem = _size_problem(len(data), start + header.payload_bytes + _CRC.size)
    if problem:
        raise fail(problem)
    codes = unpack_codes(data[start:start + header.payload_bytes], header.n_q,
                         header.num_frames, header.codebook_bits)
    return header, codes


def _size_problem(size: int, expected: int) -> str | None:
    if size < expected:
        return f"truncated file ({size} of {expected} bytes)"
    if size > expected:
        return f"corrupted file ({size - expected} unexpected trailing bytes)"
    return None


def _explain_bad_crc(data: bytes, hlen: int) -> str:
    """Why the CRC does not match, for the message: a cut or padded file when the (unverified,
    but safely parsed) header says so, else plain corruption."""
    start = _PREFIX.size + hlen
    if len(data) >= start + _CRC.size:
        try:
            header = parse_header(data[_PREFIX.size:start])
        except _HeaderProblem:
            pass
        else:
            problem = _size_problem(len(data), start + header.payload_bytes + _CRC.size)
            if problem:
                return problem[:-1] + "; CRC32 mismatch)"
    return "corrupted or truncated file (CRC32 mismatch)"


def read_afc(path: str | os.PathLike[str]) -> tuple[CodecHeader, np.ndarray]:
    """Read and validate a ``.afc`` file; raises :class:`BitstreamError` with a one-line
    message on any problem."""
    p = Path(path)
    if not p.is_file():
        raise BitstreamError(p, "file not found")
    return decode_bytes(p.read_bytes(), str(p))
