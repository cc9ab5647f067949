"""FCN music tagger (Choi, Fazekas & Sandler, 2016): a fully convolutional 2-D CNN on log-mel.

FCN-4 of the paper: 12 kHz audio, n_fft 512, hop 256, 96 mel bins, 29.1 s (96 × 1366 frames);
four 3×3 conv-BN-ELU layers with max-pools (2,4),(4,5),(3,8),(4,8), which reduce the input to
1 × 1, then one sigmoid output per tag. FCN-5/6/7 are the deeper variants evaluated on the MSD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import LogMelConfig, LogMelFrontend, MelConfig, STFTConfig
from audiofcn.models.base import PretrainedModel
from audiofcn.models.padded import (
    MONOTONE,
    FoldedConv,
    embed_with_lengths,
    folded_stack,
    frame_affine,
    padded_logmel,
    run_folded,
    run_split,
)
from audiofcn.nn.conv import ConvBNAct2d
from audiofcn.nn.se import ChannelSE, ChannelSpatialSE2d, SpatialSE2d, se_hidden

# (channels, (freq pool, time pool)) per layer. FCN-4's pools and channels are the paper's
# Table 1; FCN-5's pools reduce 96 × 1366 to 1 × 1 in five steps. FCN-6/7 add 1×1-pooled
# layers before the last (the paper's deeper MSD models).
FCN_VARIANTS: dict[str, tuple[tuple[int, ...], tuple[tuple[int, int], ...]]] = {
    "fcn4": ((128, 384, 768, 2048), ((2, 4), (4, 5), (3, 8), (4, 8))),
    "fcn5": ((128, 256, 512, 1024, 2048), ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))),
    "fcn6": ((128, 256, 384, 512, 1024, 2048),
             ((2, 4), (2, 4), (2, 4), (3, 5), (1, 1), (4, 4))),
    "fcn7": ((128, 256, 384, 512, 512, 1024, 2048),
             ((2, 4), (2, 4), (2, 4), (3, 5), (1, 1), (1, 1), (4, 4))),
    # The widely used 5-layer re-implementation (64-128-128-128-64, dropout 0.5).
    "fcn5-small": ((64, 128, 128, 128, 64), ((2, 4), (2, 4), (2, 4), (3, 5), (4, 4))),
}


def choi_frontend(sample_rate: int = 12000, n_mels: int = 96) -> LogMelConfig:
    """Choi et al.'s input: n_fft 512, hop 256, 96 mel bins, log (dB) amplitude."""
    return LogMelConfig(mel=MelConfig(sample_rate, STFTConfig(512, 256), n_mels))


@dataclass
class FCNConfig:
    labels: tuple[str, ...] = tuple(f"tag{i}" for i in range(50))
    multi_label: bool = True
    frontend: LogMelConfig = field(default_factory=choi_frontend)
    input_length: int = 349_440  # 29.12 s at 12 kHz -> 1366 frames at hop 256
    channels: tuple[int, ...] = FCN_VARIANTS["fcn4"][0]
    pools: tuple[tuple[int, int], ...] = FCN_VARIANTS["fcn4"][1]
    activation: str = "elu"
    dropout: float = 0.5
    se: str | None = None  # None, "cse", "sse" or "scse" (Roy et al.) after every conv layer
    # "global": one batch norm over the whole spectrogram; "frames": one statistic per time
    # frame (as the published MusicTaggerCNN weights), which fixes the input length.
    input_norm: str = "global"

    def __post_init__(self) -> None:
        # JSON round trips turn nested tuples into lists; keep the config comparable/hashable.
        self.labels = tuple(self.labels)
        self.channels = tuple(self.channels)
        self.pools = tuple((int(f), int(t)) for f, t in self.pools)

    @property
    def sample_rate(self) -> int:
        return self.frontend.mel.sample_rate

    @classmethod
    def variant(cls, name: str, **kwargs: object) -> FCNConfig:
        """``FCNConfig.variant("fcn5", labels=...)`` with the layer plan of that variant."""
        if name not in FCN_VARIANTS:
            raise ValueError(f"unknown FCN variant {name!r}; known: {sorted(FCN_VARIANTS)}")
        channels, pools = FCN_VARIANTS[name]
        return cls(channels=channels, pools=pools, **kwargs)  # type: ignore[arg-type]


class FCN(PretrainedModel):
    """Fully convolutional tagger on log-mel spectrograms."""

    model_name = "fcn"
    config_class = FCNConfig

    def __init__(self, config: FCNConfig | None = None) -> None:
        config = config or FCNConfig()
        super().__init__(config)
        if len(config.channels) != len(config.pools):
            raise ValueError("channels and pools need one entry per layer")
        self.frontend = LogMelFrontend(config.frontend)
        # Batch norm on the input spectrogram standardises the dB scale (as Choi's code).
        self.n_frames = 1 + config.input_length // config.frontend.mel.stft.hop_length
        if config.input_norm == "global":
            self.input_norm: nn.Module = nn.BatchNorm2d(1)
        elif config.input_norm == "frames":
            self.input_norm = nn.BatchNorm1d(self.n_frames)
        else:
            raise ValueError(f"unknown input_norm {config.input_norm!r} ('global' or 'frames')")
        if config.se not in (None, "cse", "sse", "scse"):
            raise ValueError(f"unknown se {config.se!r} (None, 'cse', 'sse' or 'scse')")
        layers, cin = [], 1
        for cout, pool in zip(config.channels, config.pools, strict=True):
            layers.append(ConvBNAct2d(cin, cout, 3, activation=config.activation,
                                      pool=tuple(pool)))
            if config.se == "cse":
                layers.append(ChannelSE(cout, se_hidden(cout, reduction=2)))
            elif config.se == "sse":
                layers.append(SpatialSE2d(cout))
            elif config.se == "scse":
                layers.append(ChannelSpatialSE2d(cout, reduction=2))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(cin, len(config.labels))
        self.min_frames = 1
        self.min_bins = 1
        for f, t in config.pools:
            self.min_frames *= t
            self.min_bins *= f

    def normalise_logmel(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames)`` log-mel -> ``(batch, 1, n_mels, frames)`` normalised."""
        if self.config.input_norm == "frames":
            if spec.shape[-1] != self.n_frames:
                raise ValueError(f"this FCN takes exactly {self.n_frames} frames "
                                 f"({self.config.input_length} samples), got {spec.shape[-1]}")
            return self.input_norm(spec.transpose(1, 2)).transpose(1, 2).unsqueeze(1)
        spec = spec.unsqueeze(1)
        if spec.shape[-1] < self.min_frames:  # too short for the pools: pad with silence
            spec = F.pad(spec, (0, self.min_frames - spec.shape[-1]),
                         value=float(spec.min()))
        return self.input_norm(spec)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, 1, n_mels, frames)`` normalised log-mel."""
        return self.normalise_logmel(self.frontend(audio))

    def folded_layers(self) -> list[FoldedConv] | None:
        """The conv stack with batch norms folded in (cached until a parameter or statistic
        changes); ``None`` for stacks the folded evaluator does not cover (SE blocks, an
        activation not known to be increasing)."""
        if self.config.se is not None or self.config.activation not in MONOTONE:
            return None
        return folded_stack(self, self.layers, self.config.activation)

    def _conv_layers(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack; in eval mode without gradients folded (batch norm in the conv,
        max-pool before the increasing activation, :mod:`audiofcn.models.padded`): the same
        values, faster."""
        folded = None if self.training or torch.is_grad_enabled() else self.folded_layers()
        if folded is None:
            return self.layers(x)
        return run_folded(folded, x)

    def embed_logmel(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames)`` log-mel -> ``(batch, channels[-1])`` features."""
        h = self._conv_layers(self.normalise_logmel(spec))
        return h.amax(dim=(-2, -1))  # 1×1 at the design length; global max for longer input

    def conv_padded(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """Conv features of ``input_length`` chunks zero-padded after ``lengths`` samples,
        computed on the real frames only (:mod:`audiofcn.models.padded`); ``None`` where that
        does not apply (training mode or gradients enabled, SE blocks, another input length,
        no all-zero frame)."""
        folded = None if self.training or torch.is_grad_enabled() else self.folded_layers()
        if folded is None or audio.shape[-1] != self.config.input_length or \
                self.n_frames < self.min_frames:
            return None
        pm = padded_logmel(self.frontend, audio, lengths, self.config.input_length)
        if pm is None:
            return None
        f, total = pm.head.shape[-1] - 1, self.n_frames
        scale, shift = frame_affine(self.input_norm, total)
        dense = pm.head[..., :f] * scale[:f] + shift[:f]
        tail = pm.floor[:, None] * scale[f:] + shift[f:]
        return run_split(folded, dense.unsqueeze(1), tail[:, None, None],
                         torch.zeros(pm.head.shape[1], dtype=torch.long,
                                     device=audio.device))

    def classify_logmel(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames)`` log-mel -> ``(batch, n_labels)`` logits."""
        return self.classifier(self.dropout(self.embed_logmel(spec)))

    def embed(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, time)`` -> ``(batch, channels[-1])`` pooled last-layer features (see
        :meth:`forward` for ``lengths``)."""
        if lengths is None:
            return self.embed_logmel(self.frontend(audio))
        return embed_with_lengths(self, audio, lengths, lambda h: h.amax(dim=(-2, -1)))

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Tag logits.

        Args:
            audio: ``(batch, time)`` mono audio at ``config.sample_rate``; any length (inputs
                shorter than the pools need are padded).
            lengths: optional ``(batch,)`` valid samples per chunk: the chunks are taken as
                zero after them (the reference zero padding), and in eval mode only their
                real frames are computed densely (same output, faster for short clips).

        Returns:
            ``(batch, n_labels)`` logits (sigmoid for multi-label, softmax otherwise).
        """
        return self.classifier(self.dropout(self.embed(audio, lengths)))
