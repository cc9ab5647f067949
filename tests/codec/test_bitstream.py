from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from audiofcn.codec import (
    BitstreamError,
    CodecHeader,
    check_compatible,
    decode_codes,
    encode_audio,
    model_fingerprint,
    read_afc,
    write_afc,
)
from audiofcn.codec.bitstream import decode_bytes, encode_bytes, pack_codes, unpack_codes
from audiofcn.models.soundstream import SoundStream, SoundStreamConfig


def _header(n_q: int = 3, frames: int = 7, bits: int = 10) -> CodecHeader:
    return CodecHeader(model="soundstream", model_id="0123456789abcdef", sample_rate=16000,
                       hop_length=320, n_q=n_q, codebook_bits=bits, num_frames=frames,
                       length=frames * 320 - 5)


@pytest.mark.parametrize("bits", [1, 3, 10, 13])
def test_pack_unpack_exact(bits: int) -> None:
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 1 << bits, size=(5, 11))
    data = pack_codes(codes, bits)
    assert len(data) == -(-5 * 11 * bits // 8)  # exactly the bits, rounded up to a byte
    assert np.array_equal(unpack_codes(data, 5, 11, bits), codes)


def test_pack_rejects_codes_too_large() -> None:
    with pytest.raises(ValueError):
        pack_codes(np.array([[1024]]), 10)


def test_file_round_trip_exact_and_payload_size(tmp_path) -> None:
    h = _header()
    codes = np.random.default_rng(0).integers(0, 1024, size=(3, 7))
    path = tmp_path / "x.afc"
    size = write_afc(path, h, codes)
    h2, codes2 = read_afc(path)
    assert h2 == h and np.array_equal(codes2, codes)
    assert h.payload_bytes == -(-3 * 7 * 10 // 8)
    assert size == path.stat().st_size
    assert h.bitrate == 3 * 10 * 50  # n_q * bits * frame_rate, exactly


def _bad(data: bytes, kind: str) -> bytes:
    b = bytearray(data)
    if kind == "truncated":
        return bytes(b[: len(b) - 3])
    if kind == "truncated_header":
        return bytes(b[:12])
    if kind == "payload_bit_flip":
        b[-6] ^= 0x10
    elif kind == "header_bit_flip":
        b[20] ^= 0x01
    elif kind == "magic":
        b[:4] = b"RIFF"
    elif kind == "trailing":
        b += b"\0\0"
    return bytes(b)


@pytest.mark.parametrize("kind,message", [
    ("truncated", "truncated"), ("truncated_header", "truncated"),
    ("payload_bit_flip", "CRC32"), ("header_bit_flip", "corrupted"),
    ("magic", "bad magic"), ("trailing", "trailing")])
def test_corrupted_files_rejected(kind: str, message: str) -> None:
    data = encode_bytes(_header(), np.zeros((3, 7), dtype=np.int64))
    with pytest.raises(BitstreamError, match=message) as err:
        decode_bytes(_bad(data, kind), "f.afc")
    assert str(err.value).startswith("f.afc: ") and "\n" not in str(err.value)


def test_other_version_rejected_even_with_valid_crc() -> None:
    data = bytearray(encode_bytes(_header(), np.zeros((3, 7), dtype=np.int64)))
    data[4] = 2
    body = bytes(data[:-4])
    fixed = body + zlib.crc32(body).to_bytes(4, "big")
    with pytest.raises(BitstreamError, match="unsupported format version 2"):
        decode_bytes(fixed, "f.afc")


def _model(seed: int) -> SoundStream:
    torch.manual_seed(seed)
    m = SoundStream(SoundStreamConfig(channels=2, embedding_dim=4, num_quantizers=4,
                                      codebook_size=16, strides=(2, 4)))
    m.train()(torch.randn(2, 1, 64))  # k-means init
    return m.eval()


def test_audio_round_trip_through_file_equals_model(tmp_path) -> None:
    m = _model(0)
    x = torch.randn(1, 123) * 0.1
    header, codes = encode_audio(m, x, n_q=3)
    assert header.num_frames == 16 and header.length == 123 and header.codebook_bits == 4
    write_afc(tmp_path / "a.afc", header, codes)
    h2, c2 = read_afc(tmp_path / "a.afc")
    check_compatible(h2, m, "a.afc")
    y = decode_codes(m, h2, c2)
    assert y.shape == (1, 123)
    assert torch.allclose(y, m.decode(m.encode(x[None], 3), 123)[0], atol=1e-6)


def test_wrong_model_rejected() -> None:
    a, b = _model(0), _model(1)
    assert model_fingerprint(a) != model_fingerprint(b)
    header, _ = encode_audio(a, torch.randn(1, 64), n_q=2)
    with pytest.raises(BitstreamError, match="encoded with model"):
        check_compatible(header, b, "a.afc")
