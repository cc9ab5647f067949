"""Exact fast inference of zero-padded chunks (``audiofcn.models.padded``): the same outputs as
the plain computation on the zero-padded chunk, for clips of many lengths."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from audiofcn.models.padded import FoldedConv, elu, run_split
from audiofcn.tagging import (
    chunk_audio,
    chunk_lengths,
    load_tagger,
    predict_chunks,
    shipped_taggers,
)
from audiofcn.tagging.stream import stream_chunks_with_lengths


def music(n: int, sr: int, seed: int = 0) -> torch.Tensor:
    """A few seconds of music-like audio: notes with harmonics and decays, plus noise hits."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n + sr)
    t = torch.arange(sr) / sr  # one note lasts 1 s, a new one starts every 0.25 s
    env = torch.exp(-6 * t)
    for start in range(0, n, sr // 4):
        f0 = 110 * 2 ** (int(torch.randint(0, 24, (1,), generator=g)) / 12)
        x[start:start + sr] += env * sum(torch.sin(2 * math.pi * f0 * h * t) / h
                                         for h in range(1, 5))
    x = x[:n] + 0.05 * torch.randn(n, generator=g)
    return 0.1 * x / x.abs().max()


def plain_crnn(model, audio):
    """The reference: the zero-padded chunk through the unfused modules."""
    cfg = model.config
    x = F.pad(model.frontend(audio), (cfg.time_pad, cfg.time_pad))
    x = model.input_norm(x.transpose(1, 2)).transpose(1, 2)
    h = model.layers(x.unsqueeze(1))
    return model.classifier(model._recurrent(h)), h


def plain_fcn(model, audio):
    h = model.layers(model.features(audio))
    return model.classifier(h.amax(dim=(-2, -1))), h


SHIPPED = shipped_taggers()
needs = pytest.mark.skipif(not {"msd50_crnn", "msd50_fcn"} <= set(SHIPPED),
                           reason="shipped MSD-50 taggers missing")


@needs
@pytest.mark.parametrize("name", ["msd50_crnn", "msd50_fcn"])
@torch.inference_mode()
def test_padded_chunks_equal_the_plain_zero_padded_computation(name):
    model = load_tagger(name)
    plain = plain_crnn if name == "msd50_crnn" else plain_fcn
    cfg = model.config
    full, sr = cfg.input_length, cfg.sample_rate
    lengths = torch.tensor([1, 300, 3 * sr, 8 * sr + 17, full - 5000, full - 300])
    audio = torch.zeros(len(lengths), full)
    src = music(full, sr)
    for i, n in enumerate(lengths.tolist()):
        audio[i, :n] = src[:n]
    ref_logits, ref_h = plain(model, audio)
    short = lengths < full - 1000  # the last one has no all-zero frame: plain path
    h = model.conv_padded(audio[short], lengths[short])
    assert h is not None and h.shape == ref_h[short].shape
    scale = ref_h[short].abs().amax(dim=(1, 2, 3), keepdim=True)
    assert ((h - ref_h[short]).abs() / scale).max() < 1e-5  # conv features, relative
    got = model(audio, lengths=lengths)
    torch.testing.assert_close(torch.sigmoid(got), torch.sigmoid(ref_logits), atol=2e-6, rtol=0)
    # One clip at a time gives the same as the mixed-length batch.
    for i in (0, 3):
        one = model(audio[i:i + 1], lengths=lengths[i:i + 1])
        torch.testing.assert_close(torch.sigmoid(one), torch.sigmoid(got[i:i + 1]),
                                   atol=2e-6, rtol=0)
    # Samples after `lengths` are ignored (taken as zero).
    clean = F.pad(src[:10], (0, full - 10))[None]
    noisy = clean.clone()
    noisy[0, 10:] = 1.0
    torch.testing.assert_close(model(noisy, lengths=torch.tensor([10])), model(clean))


@needs
@torch.inference_mode()
def test_predict_chunks_of_a_short_clip_equal_plain_padding():
    model = load_tagger("msd50_crnn")
    sr, full = model.config.sample_rate, model.config.input_length
    for n in (5 * sr, full + 7 * sr):  # one zero-padded chunk; a full chunk + a padded one
        x = music(n, sr, seed=1)
        chunks = chunk_audio(x, full, tail="pad")
        ref = torch.sigmoid(model(chunks))  # no lengths: the plain padded computation
        got = predict_chunks(model, x, tail="pad")
        torch.testing.assert_close(got, ref, atol=2e-6, rtol=0)


def _plain_stack(layers, x):
    for layer in layers:
        x = F.conv2d(x, layer.weight, layer.bias, padding=1)
        x = F.elu(F.max_pool2d(x, layer.pool)) if layer.activation == "elu" else \
            F.relu(F.max_pool2d(x, layer.pool))
    return x


@torch.inference_mode()
def test_run_split_equals_dense_for_any_row_structure():
    rng = random.Random(0)
    for trial in range(40):
        torch.manual_seed(trial)
        h, c = rng.randint(3, 40), rng.choice([1, 1, 3])
        n_layers, layers, cin = rng.randint(1, 3), [], c
        for _ in range(n_layers):
            cout = rng.randint(1, 6)
            layers.append(FoldedConv(torch.randn(cout, cin, 3, 3), torch.randn(cout),
                                     (rng.randint(1, 3), rng.randint(1, 4)),
                                     rng.choice(["elu", "relu"])))
            cin = cout
        d, n, r = rng.randint(0, 30), rng.randint(0, 60), rng.randint(1, 4)
        dense, tail = torch.randn(2, c, h, d), torch.randn(2, c, r, n)
        idx = torch.randint(0, r, (h,))
        full = torch.cat([dense, tail.index_select(2, idx)], -1)
        tw, hh = full.shape[-1], h
        for layer in layers:
            tw, hh = tw // layer.pool[1], hh // layer.pool[0]
        if tw < 1 or hh < 1:
            continue
        ref = _plain_stack(layers, full)
        got = run_split(layers, dense, tail, idx)
        torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-5, msg=f"trial {trial}")


def test_fast_elu_equals_elu():
    x = torch.linspace(-30, 30, 100_001)
    torch.testing.assert_close(elu(x), F.elu(x), atol=2e-7, rtol=0)


def test_chunk_lengths_match_streamed_lengths():
    rng = random.Random(1)
    for _ in range(300):
        t, length = rng.randint(1, 60), rng.randint(1, 12)
        hop = rng.choice([None, rng.randint(1, length)])
        tail = rng.choice(["pad", "end"])
        x = torch.randn(t)
        cuts = sorted(rng.sample(range(1, t), min(t - 1, rng.randint(0, 4)))) if t > 1 else []
        parts = list(stream_chunks_with_lengths(torch.tensor_split(x, cuts), length, hop, tail))
        lengths = torch.cat([n for _, n in parts])
        assert torch.equal(lengths, chunk_lengths(t, length, hop, tail)), (t, length, hop, tail)
        chunks = chunk_audio(x, length, hop, tail)
        for ch, n in zip(chunks, lengths.tolist(), strict=True):
            assert not ch[n:].any()  # nothing but zero padding after the valid samples


@needs
@torch.inference_mode()
def test_crnn_unpadded_policy():
    """``embed_unpadded`` (the "own length" policy): equal to the chunk path on a full chunk;
    on a short clip the GRU reads fewer steps; too few frames is an error."""
    model = load_tagger("msd50_crnn")
    cfg = model.config
    spec = model.frontend(music(cfg.input_length, cfg.sample_rate, seed=2)[None])
    torch.testing.assert_close(model.embed_unpadded(spec), model.embed_logmel(spec))
    assert model.embed_unpadded(spec[..., :300]).shape == (1, cfg.gru_hidden)
    with pytest.raises(ValueError, match="too few"):
        model.embed_unpadded(spec[..., :10])
