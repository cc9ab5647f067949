from __future__ import annotations

import random

import pytest
import torch

from audiofcn.codec import StreamingDecoder, StreamingEncoder
from audiofcn.models.soundstream import SoundStream, SoundStreamConfig


@pytest.fixture(scope="module")
def model() -> SoundStream:
    torch.manual_seed(0)
    m = SoundStream(SoundStreamConfig(channels=4, embedding_dim=8, num_quantizers=4,
                                      codebook_size=32, strides=(2, 4, 5)))
    m.train()(torch.randn(4, 1, 800) * 0.1)  # k-means init so codes are spread out
    return m.eval()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_streaming_encoder_equals_offline_for_any_chunking(model: SoundStream, seed: int) -> None:
    rng = random.Random(seed)
    x = torch.randn(1, 1, 1234) * 0.1
    offline = model.encode(x, 3)
    enc = StreamingEncoder(model, 3)
    outs, pos = [], 0
    while pos < x.shape[-1]:
        n = rng.choice([1, 7, 40, 41, 320, 555])
        outs.append(enc.push(x[..., pos:pos + n]))
        pos += n
    outs.append(enc.flush())
    streamed = torch.cat(outs, dim=-1)
    assert torch.equal(streamed, offline)


def test_encoder_latency_is_one_frame(model: SoundStream) -> None:
    enc = StreamingEncoder(model, 2)
    hop = model.hop_length
    assert enc.latency_samples == hop
    assert enc.push(torch.randn(1, 1, hop - 1)).shape[-1] == 0
    assert enc.push(torch.randn(1, 1, 1)).shape[-1] == 1  # frame 0 out at its last sample


def test_streaming_decoder_equals_offline(model: SoundStream) -> None:
    x = torch.randn(2, 1, 40 * model.hop_length) * 0.1
    codes = model.encode(x, 4)
    offline = model.decode(codes)
    dec = StreamingDecoder(model)
    rng = random.Random(0)
    outs, pos = [], 0
    while pos < codes.shape[-1]:
        n = rng.choice([1, 2, 5])
        out = dec.push(codes[..., pos:pos + n])
        assert out.shape[-1] == codes[..., pos:pos + n].shape[-1] * model.hop_length
        outs.append(out)
        pos += n
    streamed = torch.cat(outs, dim=-1)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max() < 1e-5


def test_streaming_encoder_applies_the_denoise_condition(model: SoundStream) -> None:
    torch.manual_seed(1)
    with torch.no_grad():  # a FiLM that is not the identity, so the condition matters
        model.film.proj.weight.normal_(0, 0.5)
        model.film.proj.bias.normal_(0, 0.5)
    x = torch.randn(1, 1, 2000) * 0.1
    try:
        for denoise in (False, True):
            enc = StreamingEncoder(model, 3, denoise=denoise)
            streamed = torch.cat([enc.push(x[..., i:i + 333]) for i in range(0, 2000, 333)]
                                 + [enc.flush()], dim=-1)
            assert torch.equal(streamed, model.encode(x, 3, denoise=denoise))
        assert not torch.equal(model.encode(x, 3, denoise=True), model.encode(x, 3))
        state: dict = {}
        model.encode_stream(x[..., :100], state, 3, denoise=False)
        with pytest.raises(ValueError, match="denoise"):
            model.encode_stream(x[..., 100:200], state, 3, denoise=True)
    finally:
        with torch.no_grad():
            model.film.proj.weight.zero_()
            model.film.proj.bias.zero_()
