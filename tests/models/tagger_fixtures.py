"""Tiny tagger configs and a learnable toy task shared by the tagger tests."""

from __future__ import annotations

import math

import torch

from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig, WaveformConfig
from audiofcn.models.attention_tagger import SelfAttentionTagger, SelfAttentionTaggerConfig
from audiofcn.models.fcn import FCN, FCNConfig
from audiofcn.models.rawwave import RawWaveCNN, RawWaveCNNConfig
from audiofcn.models.samplecnn import SampleCNN, SampleCNNConfig

SR = 8000
LABELS = ("low", "high")


def _logmel(n_mels: int = 32) -> LogMelConfig:
    return LogMelConfig(mel=MelConfig(SR, STFTConfig(256, 128), n_mels))


def tiny_models(multi_label: bool = True) -> dict[str, torch.nn.Module]:
    common = dict(labels=LABELS, multi_label=multi_label)
    return {
        "fcn": FCN(FCNConfig(frontend=_logmel(), input_length=4000, channels=(8, 16, 16),
                             pools=((2, 2), (2, 2), (2, 4)), **common)),
        "fcn_scse": FCN(FCNConfig(frontend=_logmel(), input_length=4000, channels=(8, 16, 16),
                                  pools=((2, 2), (2, 2), (2, 4)), se="scse", **common)),
        "samplecnn": SampleCNN(SampleCNNConfig(frontend=WaveformConfig(SR), input_length=2187,
                                               stem_channels=8, channels=(8, 8, 16, 16, 16),
                                               head_channels=16, **common)),
        "samplecnn_se": SampleCNN(SampleCNNConfig(
            frontend=WaveformConfig(SR), input_length=2187, stem_channels=8,
            channels=(8, 8, 16, 16, 16), head_channels=16, block="se", amplifying=0.5,
            **common)),
        "samplecnn_rese": SampleCNN(SampleCNNConfig(
            frontend=WaveformConfig(SR), input_length=2187, stem_channels=8,
            channels=(8, 8, 16, 16, 16), head_channels=16, block="rese", amplifying=0.5,
            multi_level=True, **common)),
        "rawwave": RawWaveCNN(RawWaveCNNConfig(input_length=4000, first_channels=8,
                                               stages=((8, 1), (16, 1)), **common)),
        "rawwave_res": RawWaveCNN(RawWaveCNNConfig(input_length=4000, first_channels=8,
                                                   stages=((8, 1), (16, 2)), residual=True,
                                                   final_pool=False, **common)),
        "attention": SelfAttentionTagger(SelfAttentionTaggerConfig(
            frontend=_logmel(), input_length=4000, conv_channels=(8, 8), conv_pools=((2, 2),
                                                                                   (2, 2)),
            d_model=16, n_heads=2, ff_dim=32, n_layers=2, dropout=0.0, **common)),
    }


def toy_batch(n: int, length: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise plus a 300 Hz tone and/or a 2.4 kHz tone; targets multi-hot ``(n, 2)``."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n, 2), generator=g).float()
    t = torch.arange(length) / SR
    phase = torch.rand(n, 2, generator=g) * 2 * math.pi
    x = 0.05 * torch.randn(n, length, generator=g)
    x = x + y[:, :1] * 0.5 * torch.sin(2 * math.pi * 300 * t + phase[:, :1])
    x = x + y[:, 1:] * 0.5 * torch.sin(2 * math.pi * 2400 * t + phase[:, 1:])
    return x, y
