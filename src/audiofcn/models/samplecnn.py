"""Sample-level CNN taggers on raw waveforms.

* SampleCNN 3^9 (Lee et al., 2017): 59,049 samples (3^10) in; a strided conv ``(1→128, k3, s3)``
  then nine ``[conv k3, BN, ReLU, max-pool 3]`` blocks (128, 128, 256, 256, 256, 256, 256, 256,
  512 channels) reduce the input to one frame; ``conv k1 (512)``, dropout 0.5, one output per tag.
* The SE / ReSE-2 variants of Kim et al. (2018): the same stem and plan with every block replaced
  by a squeeze-and-excitation block or a residual block with SE (amplifying ratio α, 16 in
  the paper), from :mod:`audiofcn.nn.se`.

Kim et al. also aggregate the last three blocks' features (multi-level aggregation) and use two
FC layers; ``multi_level=True`` gives that head, ``False`` Lee et al.'s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import WaveformConfig, WaveformFrontend
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.conv import ConvBNAct1d
from audiofcn.nn.se import ResidualSEBlock1d, SEBlock1d

LEE_CHANNELS = (128, 128, 256, 256, 256, 256, 256, 256, 512)


@dataclass
class SampleCNNConfig:
    labels: tuple[str, ...] = tuple(f"tag{i}" for i in range(50))
    multi_label: bool = True
    frontend: WaveformConfig = field(default_factory=lambda: WaveformConfig(sample_rate=22050))
    input_length: int = 59_049  # 3^10: 2.68 s at 22,050 Hz
    stem_channels: int = 128
    channels: tuple[int, ...] = LEE_CHANNELS
    block: str = "basic"  # "basic" (Lee), "se" (Kim SE), "rese" (Kim ReSE-2), "res" (Res-2)
    amplifying: float = 16.0  # SE bottleneck = channels * amplifying (Kim et al.)
    head_channels: int = 512  # conv k1 (Lee) / FC width (multi-level head)
    multi_level: bool = False  # Kim et al.'s aggregation of the last three blocks
    dropout: float = 0.5

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self.channels = tuple(self.channels)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate


class SampleCNN(PretrainedModel):
    """Sample-level tagger (3^n model): stride-3 stem and ``len(channels)`` pool-3 blocks."""

    model_name = "samplecnn"
    config_class = SampleCNNConfig

    def __init__(self, config: SampleCNNConfig | None = None) -> None:
        config = config or SampleCNNConfig()
        super().__init__(config)
        c = config
        if c.block not in ("basic", "se", "rese", "res"):
            raise ValueError(f"unknown block {c.block!r} (basic, se, rese or res)")
        self.frontend = WaveformFrontend(c.frontend)
        self.stem = ConvBNAct1d(1, c.stem_channels, 3, stride=3, padding=0)
        blocks, cin = [], c.stem_channels
        for cout in c.channels:
            if c.block == "basic":
                blocks.append(ConvBNAct1d(cin, cout, 3, pool=3))
            elif c.block == "se":
                blocks.append(SEBlock1d(cin, cout, amplifying=c.amplifying))
            else:
                blocks.append(ResidualSEBlock1d(
                    cin, cout, amplifying=c.amplifying if c.block == "rese" else 0.0))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        if c.multi_level:
            agg = sum(c.channels[-3:])
            self.head = nn.Sequential(nn.Linear(agg, c.head_channels),
                                      nn.BatchNorm1d(c.head_channels), nn.ReLU())
        else:
            self.head = ConvBNAct1d(cin, c.head_channels, 1)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(c.head_channels, len(c.labels))
        self.min_length = 3 ** (len(c.channels) + 1)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, head_channels)`` clip features."""
        x = self.frontend(audio)
        if x.shape[-1] < self.min_length:  # shorter than the receptive field: zero-pad
            x = F.pad(x, (0, self.min_length - x.shape[-1]))
        h = self.stem(x)
        pooled = []
        for block in self.blocks:
            h = block(h)
            pooled.append(h.amax(dim=-1))  # global max pool (one frame at the design length)
        if self.config.multi_level:
            return self.head(torch.cat(pooled[-3:], dim=-1))
        return self.head(h).amax(dim=-1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Tag logits.

        Args:
            audio: ``(batch, time)`` or ``(batch, 1, time)`` waveform at ``config.sample_rate``;
                any length (shorter than ``3^(n_blocks+1)`` is zero-padded).

        Returns:
            ``(batch, n_labels)`` logits.
        """
        return self.classifier(self.dropout(self.embed(audio)))
