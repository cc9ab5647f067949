"""Multi-scale embeddings, neighbourhood averaging, centring and the meeting-like turns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audiofcn.diarization import ClusteringConfig, DiarizationConfig, MFCCStatsEmbedder, diarize
from audiofcn.diarization.clustering import cluster
from audiofcn.diarization.embedders import RCNNEmbedder
from audiofcn.diarization.pipeline import _context_average
from audiofcn.diarization.simulate import cut_turns
from audiofcn.models.speaker_rcnn import SpeakerRCNN, SpeakerRCNNConfig

SR = 16000


def small() -> SpeakerRCNN:
    torch.manual_seed(0)
    return SpeakerRCNN(SpeakerRCNNConfig(channels=(4, 8), pools=((2, 2), (2, 2)),
                                         gru_hidden=8, embedding_dim=6)).eval()


def test_embed_scales_shapes_and_centre_scale_equals_windows() -> None:
    m = small()
    step = m.config.frame_stride * m.config.hop_length
    x = torch.randn(40 * step)
    e = m.embed_scales(x, 10, 5, (20, 10, 4))
    n = 1 + (40 - 10) // 5
    assert e.shape == (n, 3, 6)
    assert torch.allclose(e.norm(dim=-1), torch.ones(n, 3), atol=1e-5)
    # the scale equal to the window is the plain sliding-window embedding
    assert torch.allclose(e[:, 1], m.embed_windows(x, 10, 5), atol=1e-5)
    # a longer scale is shifted inside the chunk at the edges: its first two windows coincide
    # (both start at step 0), and a scale longer than the chunk is cut to the chunk
    assert torch.allclose(e[0, 0], e[1, 0], atol=1e-6) and not torch.allclose(e[2, 0], e[3, 0])
    assert m.embed_scales(x, 10, 5, (80,)).shape == (n, 1, 6)
    assert m.embed_scales(torch.randn(5 * step), 10, 5, (10,)).shape == (0, 1, 6)
    with pytest.raises(ValueError):
        m.embed_scales(x, 10, 5, (1,))


def test_multiscale_pipeline_and_errors(two_speaker_audio) -> None:
    audio, _ = two_speaker_audio
    emb = RCNNEmbedder(small())
    single = diarize(audio, SR, embedder=emb, num_speakers=2)
    # all weight on the window's own scale: the same result as without scales
    only = diarize(audio, SR, embedder=emb, num_speakers=2, config=DiarizationConfig(
        scales=(3.0, 1.5, 1.0), scale_weights=(0.0, 1.0, 0.0)))
    assert [(s.start, s.end, s.speaker) for s in only.segments] == \
        [(s.start, s.end, s.speaker) for s in single.segments]
    multi = diarize(audio, SR, embedder=emb, num_speakers=2,
                    config=DiarizationConfig(scales=(3.0, 1.5, 1.0)))
    assert multi.num_speakers == 2 and multi.segments
    # centroids stay in the single-window space (what a speaker catalog holds)
    assert all(v.shape == (6,) for v in multi.centroids.values())
    for bad in (DiarizationConfig(scales=(3.0, 1.0)),  # window 1.5 s missing
                DiarizationConfig(scales=(3.0, 1.5), scale_weights=(1.0,)),
                DiarizationConfig(scales=(3.0, 1.5), scale_weights=(-1.0, 1.0))):
        with pytest.raises(ValueError):
            diarize(audio, SR, embedder=emb, config=bad)
    with pytest.raises(ValueError, match="embed_scales"):
        diarize(audio, SR, embedder=MFCCStatsEmbedder(),
                config=DiarizationConfig(scales=(3.0, 1.5)))


def test_context_average_stays_inside_speech_regions() -> None:
    rng = np.random.default_rng(0)
    a, b = np.eye(4)[0], np.eye(4)[1]
    # 10 windows, 25 frames apart; windows 0-4 in region 1 (speaker a), 5-9 in region 2 (b)
    x = np.stack([a] * 5 + [b] * 5) + 0.3 * rng.standard_normal((10, 4))
    centres = np.arange(10) * 25 + 10
    mask = np.ones(260, dtype=bool)
    mask[130] = False  # the pause between the two regions
    out = _context_average(x, centres, mask, 2, 25)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)
    # averaging pulls every window towards its own speaker, never across the pause
    assert (out[:5] @ a > out[:5] @ b).all() and (out[5:] @ b > out[5:] @ a).all()
    one_region = _context_average(x, centres, np.ones(260, dtype=bool), 2, 25)
    assert not np.allclose(one_region[4], out[4])  # window 4 now also averages 5 and 6
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert np.allclose(_context_average(x, centres, mask, 0, 25), unit)
    # windows further apart than width hops (a gap in the kept windows) are not averaged
    assert np.allclose(_context_average(x[[0, 4]], centres[[0, 4]], mask, 2, 25), unit[[0, 4]])


def test_centring_removes_a_shared_component() -> None:
    rng = np.random.default_rng(1)
    shared = 3.0 * np.eye(8)[0]
    x = np.concatenate([shared + np.eye(8)[1] + 0.2 * rng.standard_normal((30, 8)),
                        shared + np.eye(8)[2] + 0.2 * rng.standard_normal((20, 8))])
    labels = cluster(x, config=ClusteringConfig(center=True))
    assert labels.tolist() == [0] * 30 + [1] * 20


def test_cut_turns_lengths_and_trimming() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(10 * SR) / SR
    a = (0.3 * np.sin(2 * np.pi * 150 * t)).astype(np.float32)
    a[3 * SR:5 * SR] = 0.0  # a 2-s pause inside the utterance
    out = cut_turns([("s1", a), ("s2", np.zeros(SR, np.float32))], rng, (0.5, 3.0))
    assert out and {s for s, _ in out} == {"s1"}  # silence gives no turns
    assert all(0.3 * SR <= len(x) <= 3.0 * SR for _, x in out)
    assert all(np.abs(x[:400]).max() > 0.01 and np.abs(x[-400:]).max() > 0.01 for _, x in out)
    assert sum(len(x) for _, x in out) <= 8 * SR + 1
    with pytest.raises(ValueError):
        cut_turns([("s1", a)], rng, (2.0, 1.0))
