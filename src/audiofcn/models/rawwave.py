"""Very deep raw-waveform CNNs (Dai, Dai, Qu, Li & Das, 2017): M3, M5, M11, M18, M34-res.

8 kHz input (32,000 samples = 4 s in the paper). The first conv has a receptive field of 80
samples (10 ms) and stride 4; then 3-wide convs with BN + ReLU in stages separated by max-pool 4;
global average pooling over time and one linear layer to the classes: no FC hidden layers, no
dropout, so the model is fully convolutional and takes any input length.

Parameter counts match the paper's (0.2 M, 0.5 M, 1.8 M, 3.7 M, 4 M for 10 classes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import WaveformConfig, WaveformFrontend
from audiofcn.models.base import PretrainedModel
from audiofcn.nn.conv import ConvBNAct1d, ResidualBlock1d

# name -> (first-layer channels, [(channels, number of 3-wide convs or residual blocks), ...],
#          residual?, max-pool after the last stage?) -- the paper's Table 1: M3 and M5 pool
#          after their last conv, M11/M18/M34-res go straight to global average pooling.
M_VARIANTS: dict[str, tuple[int, tuple[tuple[int, int], ...], bool, bool]] = {
    "m3": (256, ((256, 1),), False, True),
    "m5": (128, ((128, 1), (256, 1), (512, 1)), False, True),
    "m11": (64, ((64, 2), (128, 2), (256, 3), (512, 2)), False, False),
    "m18": (64, ((64, 4), (128, 4), (256, 4), (512, 4)), False, False),
    "m34res": (48, ((48, 3), (96, 4), (192, 6), (384, 3)), True, False),
}


def dai_frontend() -> WaveformConfig:
    return WaveformConfig(sample_rate=8000)


@dataclass
class RawWaveCNNConfig:
    labels: tuple[str, ...] = tuple(str(i) for i in range(10))
    multi_label: bool = False  # single-label softmax (the paper); True: sigmoid per class
    frontend: WaveformConfig = field(default_factory=dai_frontend)
    input_length: int = 32_000  # 4 s at 8 kHz
    first_channels: int = 128
    first_kernel: int = 80
    first_stride: int = 4
    stages: tuple[tuple[int, int], ...] = M_VARIANTS["m5"][1]
    residual: bool = False
    pool: int = 4
    final_pool: bool = True

    def __post_init__(self) -> None:
        # JSON round trips turn nested tuples into lists; keep the config comparable.
        self.labels = tuple(self.labels)
        self.stages = tuple((int(c), int(n)) for c, n in self.stages)

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    @classmethod
    def variant(cls, name: str, **kwargs: object) -> RawWaveCNNConfig:
        """``RawWaveCNNConfig.variant("m18", labels=...)``: the layer plan of M3 … M34-res."""
        key = name.lower().replace("-", "")
        if key not in M_VARIANTS:
            raise ValueError(f"unknown M-series variant {name!r}; known: {sorted(M_VARIANTS)}")
        first, stages, residual, final_pool = M_VARIANTS[key]
        return cls(first_channels=first, stages=stages, residual=residual,
                   final_pool=final_pool, **kwargs)  # type: ignore[arg-type]


class RawWaveCNN(PretrainedModel):
    """M-series classifier on raw waveforms (fully convolutional, global average pooling)."""

    model_name = "rawwave_cnn"
    config_class = RawWaveCNNConfig

    def __init__(self, config: RawWaveCNNConfig | None = None) -> None:
        config = config or RawWaveCNNConfig()
        super().__init__(config)
        c = config
        self.frontend = WaveformFrontend(c.frontend)
        # Pad so the first layer yields ceil(T / stride) frames centred on their windows.
        self.first = ConvBNAct1d(1, c.first_channels, c.first_kernel, stride=c.first_stride,
                                 padding=(c.first_kernel - c.first_stride) // 2, bias=True)
        stages: list[nn.Module] = []
        cin = c.first_channels
        for cout, n in c.stages:
            layers: list[nn.Module] = [nn.MaxPool1d(c.pool)]
            if c.residual:
                # Dai et al.'s M34-res: two-conv residual blocks; the paper keeps its first
                # stage's width equal to the first layer's, later stages double it.
                for j in range(n):
                    layers.append(ResidualBlock1d(cin if j == 0 else cout, cout))
            else:
                for j in range(n):
                    layers.append(ConvBNAct1d(cin if j == 0 else cout, cout, 3, bias=True))
            cin = cout
            stages.append(nn.Sequential(*layers))
        if c.final_pool:
            stages.append(nn.MaxPool1d(c.pool))
        self.stages = nn.Sequential(*stages)
        self.classifier = nn.Linear(cin, len(c.labels))
        self.min_length = c.first_stride * c.pool ** (len(c.stages) + int(c.final_pool))

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, channels)`` globally averaged last-stage features."""
        x = self.frontend(audio)
        if x.shape[-1] < self.min_length:
            x = F.pad(x, (0, self.min_length - x.shape[-1]))
        return self.stages(self.first(x)).mean(dim=-1)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Class logits.

        Args:
            audio: ``(batch, time)`` or ``(batch, 1, time)`` waveform at ``config.sample_rate``
                (8 kHz in the paper); any length.

        Returns:
            ``(batch, n_labels)`` logits (softmax for single-label, sigmoid for multi-label).
        """
        return self.classifier(self.embed(audio))
