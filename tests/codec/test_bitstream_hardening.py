"""Hostile ``.afc`` files: every malformed header is a one-line :class:`BitstreamError`, never
another exception, and the CRC is checked before the header is trusted. Includes a
property-based fuzz test (``hypothesis``) of the reader."""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiofcn.cli.main import main
from audiofcn.codec import BitstreamError, CodecHeader
from audiofcn.codec.bitstream import FIELD_RULES, decode_bytes, encode_bytes

GOOD = {"model": "soundstream", "model_id": "0123456789abcdef", "sample_rate": 16000,
        "hop_length": 320, "n_q": 3, "codebook_bits": 10, "num_frames": 7, "length": 2235,
        "denoise": False, "frame_rate": 50.0}


def _file(header: bytes | str, payload: bytes | None = None, crc: bool = True) -> bytes:
    """A file with this raw header text, a zero payload of the right size for GOOD, and a
    valid CRC (so the test reaches the header validation)."""
    head = header.encode() if isinstance(header, str) else header
    payload = bytes(-(-3 * 7 * 10 // 8)) if payload is None else payload
    body = b"AFCC" + struct.pack(">BI", 1, len(head)) + head + payload
    return body + (struct.pack(">I", zlib.crc32(body)) if crc else b"\0\0\0\0")


def _with(**changes: object) -> str:
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...})


def test_issue_repro_null_header_without_valid_crc() -> None:
    data = b"AFCC\x01\x00\x00\x00\x04null\x00\x00\x00\x00"
    with pytest.raises(BitstreamError, match="CRC32 mismatch"):
        decode_bytes(data, "n.afc")


@pytest.mark.parametrize(("header", "message"), [
    ("null", "must be a JSON object"),
    ("[1, 2]", "must be a JSON object"),
    ("[" * 4000 + "]" * 4000, "nested too deeply"),
    ("[" * 2000 + "]" * 2000, "nested too deeply"),
    ('{"model": ' + "[" * 3000 + "]" * 3000 + "}", "nested too deeply"),
    (_with(length=1e400), "length"),
    (_with(sample_rate=0).replace('"sample_rate": 0', '"sample_rate": 1' + "0" * 5000),
     "too long|sample_rate"),
    (_with(length=10**30), "length"),
    (_with(length=10**15), "length"),
    (_with(n_q=float("nan")), "NaN"),
    (_with(n_q=3.0), "n_q"),
    (_with(n_q="3"), "n_q"),
    (_with(n_q=True), "n_q"),
    (_with(num_frames=0), "num_frames"),
    (_with(length=0), "length"),
    (_with(codebook_bits=25), "codebook_bits"),
    (_with(sample_rate=-16000), "sample_rate"),
    (_with(denoise=1), "denoise"),
    (_with(model=None), "model"),
    (_with(model="a\nb"), "model"),
    (_with(model=...), "missing header field 'model'"),
    (_with(surprise=1), "unknown header field 'surprise'"),
    (_with(frame_rate="fast"), "frame_rate"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("{" + '"model": "x", ' * 3 + "}", "corrupted header"),
])
def test_bad_header_with_valid_crc(header: str | bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message) as err:
        decode_bytes(_file(header), "f.afc")
    text = str(err.value)
    assert text.startswith("f.afc: ") and "\n" not in text and len(text) < 300


def test_oversized_header_length_rejected_before_reading() -> None:
    data = b"AFCC" + struct.pack(">BI", 1, 10**9) + b"{}" + b"\0" * 4
    with pytest.raises(BitstreamError, match="header length"):
        decode_bytes(data, "f.afc")


def test_crc_checked_before_the_header_is_parsed() -> None:
    # A structurally fine header whose CRC does not match must not be interpreted at all.
    with pytest.raises(BitstreamError, match="CRC32 mismatch"):
        decode_bytes(_file(_with(n_q=float("nan")), crc=False), "f.afc")


def test_good_header_round_trips_and_every_field_has_a_rule() -> None:
    header, codes = decode_bytes(_file(_with()), "f.afc")
    assert header.n_q == 3 and codes.shape == (3, 7)
    names = {f.name for f in dataclasses.fields(CodecHeader)}
    assert names <= set(FIELD_RULES), "a new CodecHeader field needs a rule in FIELD_RULES"


def test_cli_decode_of_issue_repro_is_one_line(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "n.afc"
    src.write_bytes(b"AFCC\x01\x00\x00\x00\x04null\x00\x00\x00\x00")
    assert main(["decode", str(src), str(tmp_path / "o.wav")]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "CRC32" in err
    assert not (tmp_path / "o.wav").exists()


_VALID = encode_bytes(CodecHeader(**{k: v for k, v in GOOD.items() if k != "frame_rate"}),
                      np.arange(21).reshape(3, 7) % 1024)


def _json_values() -> st.SearchStrategy[object]:
    leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(leaf, lambda c: st.lists(c, max_size=4) |
                        st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.builds(
    lambda cut, flips: bytes(b ^ f for b, f in zip(_VALID[:cut], flips + bytes(len(_VALID)),
                                                   strict=False)),
    st.integers(0, len(_VALID)), st.binary(max_size=len(_VALID))))
def test_fuzz_random_and_damaged_bytes(data: bytes) -> None:
    try:
        decode_bytes(data, "f.afc")
    except BitstreamError as err:
        assert "\n" not in str(err)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(GOOD) + ["x"]), _json_values(), max_size=12)
       | st.builds(lambda k, v: {**GOOD, k: v}, st.sampled_from(sorted(GOOD)), _json_values()))
def test_fuzz_header_fields_with_valid_crc(fields: dict[str, object]) -> None:
    head = json.dumps(fields)  # NaN/Infinity included: json.dumps writes them
    try:
        h, codes = decode_bytes(_file(head), "f.afc")
    except BitstreamError as err:
        assert "\n" not in str(err)
    else:
        assert codes.shape == (h.n_q, h.num_frames)
