from __future__ import annotations

import torch

from audiofcn.models import load_model
from audiofcn.models.speaker_rcnn import SpeakerRCNN, SpeakerRCNNConfig


def small() -> SpeakerRCNN:
    return SpeakerRCNN(SpeakerRCNNConfig(channels=(4, 8), pools=((2, 2), (2, 2)),
                                         gru_hidden=8, embedding_dim=6, num_classes=3))


def test_shapes_and_unit_norm() -> None:
    m = small().eval()
    e = m(torch.randn(3, 16000))
    assert e.shape == (3, 6)
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    assert m(torch.randn(2, 1, 8000)).shape == (2, 6)
    assert m.logits(e).shape == (3, 3)


def test_gain_invariance() -> None:
    m = small().eval()
    x = torch.randn(2, 16000) * 0.1
    assert torch.allclose(m(x), m(x * 0.25), atol=1e-4)


def test_gradients_reach_every_parameter() -> None:
    m = small().train()
    e = m(torch.randn(4, 12000))
    (m.logits(e).sum() + e.sum()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_embed_windows_matches_window_count_and_forward() -> None:
    m = small().eval()
    step = m.config.frame_stride * m.config.hop_length  # samples per conv output step
    x = torch.randn(40 * step)
    e = m.embed_windows(x, window_steps=10, hop_steps=5)
    assert e.shape == (1 + (40 - 10) // 5, 6)
    assert torch.allclose(e.norm(dim=1), torch.ones(len(e)), atol=1e-5)
    assert m.embed_windows(torch.randn(5 * step), 10, 5).shape == (0, 6)


def test_round_trip_without_head(tmp_path) -> None:
    m = small().eval()
    path = m.without_classifier().save_pretrained(tmp_path / "spk.safetensors")
    back = load_model(path)
    assert isinstance(back, SpeakerRCNN) and back.classifier is None
    x = torch.randn(2, 16000)
    assert torch.allclose(back(x), m(x), atol=1e-6)
