import random

import pytest
import torch

from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig
from audiofcn.io import AudioError, resample, save_audio
from audiofcn.io.stream import read_mono_blocks
from audiofcn.models.fcn import FCN, FCNConfig
from audiofcn.tagging import chunk_audio, predict_track, tag_file
from audiofcn.tagging.stream import stream_chunks


def test_stream_chunks_equal_whole_track_chunks():
    rng = random.Random(0)
    for _ in range(500):
        t, length = rng.randint(1, 60), rng.randint(1, 12)
        hop = rng.choice([None, rng.randint(1, 16)])  # includes hop > length (gaps)
        tail = rng.choice(["pad", "end"])
        x = torch.randn(t)
        cuts = sorted(rng.sample(range(1, t), min(t - 1, rng.randint(0, 5)))) if t > 1 else []
        got = torch.cat(list(stream_chunks(torch.tensor_split(x, cuts), length, hop, tail)))
        assert torch.equal(got, chunk_audio(x, length, hop, tail)), (t, length, hop, cuts, tail)


def test_end_tail_ends_at_the_track_end():
    x = torch.arange(10.0)
    assert chunk_audio(x, 4, tail="pad")[-1].tolist() == [8, 9, 0, 0]
    assert chunk_audio(x, 4, tail="end")[-1].tolist() == [6, 7, 8, 9]
    assert chunk_audio(x, 4, tail="end").shape == (3, 4)
    assert chunk_audio(x[:3], 4, tail="end").tolist() == [[0, 1, 2, 0]]  # shorter: padded
    assert torch.equal(chunk_audio(x[:8], 4, tail="end"), chunk_audio(x[:8], 4))


def test_read_blocks_resamples_seamlessly(tmp_path):
    x = torch.sin(torch.arange(48000 * 5) * 2 * torch.pi * 440 / 48000) * 0.5
    save_audio(tmp_path / "a.wav", torch.stack([x, x]), 48000)
    whole = torch.cat(list(read_mono_blocks(tmp_path / "a.wav", 12000, block_seconds=100)))
    blocks = list(read_mono_blocks(tmp_path / "a.wav", 12000, block_seconds=0.7))
    assert len(blocks) > 5
    torch.testing.assert_close(torch.cat(blocks), whole)
    assert abs(whole.shape[0] - 60000) <= 1
    ref = resample(x[None], 48000, 12000)[0]  # a different resampler, same signal
    assert (whole[1000:59000] - ref[1000:59000]).abs().max() < 1e-2
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioError, match="bad.wav"):
        list(read_mono_blocks(bad, 12000))


def test_tag_file_in_blocks_equals_whole_track(tmp_path):
    cfg = FCNConfig(labels=("a", "b"), frontend=LogMelConfig(mel=MelConfig(8000,
                                                                           STFTConfig(256, 128),
                                                                           16)),
                    input_length=4000, channels=(4, 8), pools=((2, 2), (2, 4)))
    model = FCN(cfg).eval()
    audio = torch.randn(8000 * 7 + 123) * 0.1
    save_audio(tmp_path / "a.wav", audio, 8000)  # at the model rate: no resampling
    res = tag_file(model, tmp_path / "a.wav", batch_size=3, hop=3000, block_seconds=0.9)
    whole = predict_track(model, audio, hop=3000, tail="end")
    assert res.duration == pytest.approx(7 + 123 / 8000)
    torch.testing.assert_close(torch.tensor([res.scores["a"], res.scores["b"]]), whole,
                               atol=1e-4, rtol=0)  # the file holds 16-bit samples
