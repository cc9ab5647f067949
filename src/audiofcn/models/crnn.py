"""Convolutional recurrent tagger (Choi, Fazekas, Sandler & Cho, 2017): CNN + GRU on log-mel.

The layout of keunwoochoi/music-auto_tagging-keras ``MusicTaggerCRNN``: the 96 × 1366 log-mel
is zero-padded to 1440 frames, batch-normalised *per time frame* (the published weights have
one statistic per frame, so the input length is fixed), then four 3×3 conv-BN-ELU layers with
max-pools (2,2),(3,3),(4,4),(4,4) reduce it to 128 channels × 1 bin × 15 steps, two GRUs of
32 units read the 15 steps and a sigmoid layer gives the 50 MSD tags.

The GRU is Keras-1's, not PyTorch's: gates z, r, h; gates use the hard sigmoid
``clip(0.2 x + 0.5, 0, 1)``; the reset gate multiplies the state *before* the recurrent
matmul, ``hh = tanh(x W_h + b_h + (r * h) U_h)``; and ``h' = z * h + (1 - z) * hh``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.frontend import LogMelConfig, LogMelFrontend, choi_keras_logmel
from audiofcn.models.base import PretrainedModel
from audiofcn.models.padded import (
    FoldedConv,
    embed_with_lengths,
    folded_stack,
    frame_affine,
    padded_logmel,
    run_folded,
    run_split,
)
from audiofcn.nn.conv import ConvBNAct2d


@dataclass
class CRNNConfig:
    labels: tuple[str, ...] = tuple(f"tag{i}" for i in range(50))
    multi_label: bool = True
    frontend: LogMelConfig = field(default_factory=choi_keras_logmel)
    input_length: int = 349_440  # 29.12 s at 12 kHz -> 1366 frames at hop 256
    time_pad: int = 37  # zero frames added on each side of the log-mel (Keras ZeroPadding2D)
    channels: tuple[int, ...] = (64, 128, 128, 128)
    pools: tuple[tuple[int, int], ...] = ((2, 2), (3, 3), (4, 4), (4, 4))
    gru_hidden: int = 32
    gru_layers: int = 2
    dropout: float = 0.3
    bn_eps: float = 1e-3  # Keras 1.2's BatchNormalization epsilon

    def __post_init__(self) -> None:
        self.labels = tuple(self.labels)
        self.channels = tuple(self.channels)
        self.pools = tuple((int(f), int(t)) for f, t in self.pools)

    @property
    def sample_rate(self) -> int:
        return self.frontend.mel.sample_rate

    @property
    def n_frames(self) -> int:
        """Log-mel frames of one ``input_length`` chunk (centred STFT)."""
        return 1 + self.input_length // self.frontend.mel.stft.hop_length


def hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """Keras/Theano ``hard_sigmoid``: ``clip(0.2 x + 0.5, 0, 1)``."""
    return (0.2 * x + 0.5).clamp(0.0, 1.0)


class KerasGRU(nn.Module):
    """Keras-1 GRU (see the module docstring for the formula).

    Parameters are stored as Keras does, gates concatenated in z, r, h order:
    ``W (input, 3*hidden)``, ``U (hidden, 3*hidden)``, ``b (3*hidden,)``.

    Shapes: ``(batch, steps, input)`` -> ``(batch, steps, hidden)``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.W = nn.Parameter(torch.empty(input_size, 3 * hidden_size))
        self.U = nn.Parameter(torch.empty(hidden_size, 3 * hidden_size))
        self.b = nn.Parameter(torch.zeros(3 * hidden_size))
        nn.init.xavier_uniform_(self.W)
        nn.init.orthogonal_(self.U)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.hidden_size
        xw = torch.addmm(self.b, x.reshape(-1, x.shape[-1]), self.W).reshape(
            x.shape[0], x.shape[1], 3 * n)
        u_zr, u_h = self.U[:, :2 * n], self.U[:, 2 * n:]
        h = x.new_zeros(x.shape[0], n)
        out = []
        for t in range(x.shape[1]):
            zr = hard_sigmoid(xw[:, t, :2 * n] + h @ u_zr)
            z, r = zr[:, :n], zr[:, n:]
            hh = torch.tanh(xw[:, t, 2 * n:] + (r * h) @ u_h)
            h = z * h + (1.0 - z) * hh
            out.append(h)
        return torch.stack(out, dim=1)


class CRNN(PretrainedModel):
    """CNN + GRU tagger on a fixed-length log-mel chunk."""

    model_name = "crnn"
    config_class = CRNNConfig

    def __init__(self, config: CRNNConfig | None = None) -> None:
        config = config or CRNNConfig()
        super().__init__(config)
        if len(config.channels) != len(config.pools):
            raise ValueError("channels and pools need one entry per layer")
        self.frontend = LogMelFrontend(config.frontend)
        self.padded_frames = config.n_frames + 2 * config.time_pad
        # One statistic per (padded) time frame, as the published weights (Keras axis=time).
        self.input_norm = nn.BatchNorm1d(self.padded_frames, eps=config.bn_eps)
        layers, cin = [], 1
        for cout, pool in zip(config.channels, config.pools, strict=True):
            layers.append(ConvBNAct2d(cin, cout, 3, activation="elu", pool=pool, bias=True))
            cin = cout
        self.layers = nn.Sequential(*layers)
        for m in self.layers.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = config.bn_eps
        n_bins = config.frontend.mel.n_mels
        for f, _ in config.pools:
            n_bins //= f
        if n_bins < 1:
            raise ValueError("the pools reduce the mel axis below one bin")
        grus, size = [], cin * n_bins
        for _ in range(config.gru_layers):
            grus.append(KerasGRU(size, config.gru_hidden))
            size = config.gru_hidden
        self.grus = nn.ModuleList(grus)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.gru_hidden, len(config.labels))

    def folded_layers(self) -> list[FoldedConv]:
        """The conv stack with each batch norm folded into its conv (cached until a parameter
        or statistic changes)."""
        return folded_stack(self, self.layers, "elu")

    def _conv_layers(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack. In eval mode without gradients, each batch norm is folded into its
        conv, the max-pool runs before the ELU and the first layer is a matrix product per
        pooling phase (:mod:`audiofcn.models.padded`): exact rewrites (ELU is increasing, so
        it commutes with max) that cut the element-wise work 4-16x."""
        if self.training or torch.is_grad_enabled():  # gradients flow through the modules
            return self.layers(x)
        return run_folded(self.folded_layers(), x)

    def _recurrent(self, h: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, bins, steps)`` conv features -> ``(batch, gru_hidden)``."""
        h = h.permute(0, 3, 1, 2).flatten(2)  # (batch, steps, channels * bins), Keras order
        for gru in self.grus:
            h = gru(h)
        return h[:, -1]

    def embed_logmel(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, n_frames)`` log-mel -> ``(batch, gru_hidden)`` last GRU state."""
        if spec.shape[-1] != self.config.n_frames:
            raise ValueError(f"the CRNN takes exactly {self.config.n_frames} frames "
                             f"({self.config.input_length} samples), got {spec.shape[-1]}")
        x = F.pad(spec, (self.config.time_pad, self.config.time_pad))
        x = self.input_norm(x.transpose(1, 2)).transpose(1, 2)  # per-frame statistics
        return self._recurrent(self._conv_layers(x.unsqueeze(1)))

    def embed_unpadded(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, frames)`` log-mel of a clip *shorter* than a chunk (``frames`` ≤
        ``n_frames``) -> ``(batch, gru_hidden)``, without padding it to a chunk: the conv stack
        and the GRU run on the clip's own frames. The per-frame input norm uses the statistics
        of the frames' positions (the left zero frames, then clip frames 0 … frames-1) and those
        of the right zero frames; at ``frames == n_frames`` this is :meth:`embed_logmel`.
        Needs at least as many frames as the pools take (ValueError otherwise)."""
        cfg, n = self.config, spec.shape[-1]
        if n > cfg.n_frames:
            raise ValueError(f"at most {cfg.n_frames} frames, got {n}")
        tp, total = cfg.time_pad, self.padded_frames
        steps = n + 2 * tp
        for _, t in cfg.pools:
            steps //= t
        if steps < 1:
            raise ValueError(f"{n} frames are too few for the CRNN's pools")
        pos = torch.cat([torch.arange(tp + n), torch.arange(total - tp, total)]).to(spec.device)
        bn = self.input_norm
        x = F.pad(spec, (tp, tp)).transpose(1, 2)
        x = F.batch_norm(x, bn.running_mean[pos], bn.running_var[pos], bn.weight[pos],
                         bn.bias[pos], False, 0.0, bn.eps).transpose(1, 2)
        return self._recurrent(self._conv_layers(x.unsqueeze(1)))

    def conv_padded(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor | None:
        """Conv features of chunks zero-padded after ``lengths`` samples, computed on the real
        frames only (:mod:`audiofcn.models.padded`); ``None`` where that does not apply
        (training mode or gradients enabled, another input length, a chunk with no all-zero
        frame)."""
        cfg = self.config
        if self.training or torch.is_grad_enabled() or audio.shape[-1] != cfg.input_length:
            return None
        pm = padded_logmel(self.frontend, audio, lengths, cfg.input_length)
        if pm is None:
            return None
        tp, f, total = cfg.time_pad, pm.head.shape[-1] - 1, self.padded_frames
        scale, shift = frame_affine(self.input_norm, total)
        d0 = tp + f  # dense: the left zero frames and log-mel frames [0, f)
        dense = F.pad(pm.head[..., :f], (tp, 0)) * scale[:d0] + shift[:d0]
        raw = pm.floor[:, None].expand(-1, total - d0).clone()
        raw[:, tp + cfg.n_frames - d0:] = 0.0  # the right zero frames
        tail = raw * scale[d0:] + shift[d0:]
        return run_split(self.folded_layers(), dense.unsqueeze(1), tail[:, None, None],
                         torch.zeros(pm.head.shape[1], dtype=torch.long,
                                     device=audio.device))

    def classify_logmel(self, spec: torch.Tensor) -> torch.Tensor:
        """``(batch, n_mels, n_frames)`` log-mel (the frontend's output) -> ``(batch, n_labels)``
        logits."""
        return self.classifier(self.dropout(self.embed_logmel(spec)))

    def embed(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, input_length)`` -> ``(batch, gru_hidden)`` penultimate features (see
        :meth:`forward` for ``lengths``)."""
        if lengths is None:
            return self.embed_logmel(self.frontend(audio))
        return embed_with_lengths(self, audio, lengths, self._recurrent)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Tag logits.

        Args:
            audio: ``(batch, input_length)`` mono audio at ``config.sample_rate`` (29.12 s
                at 12 kHz for the published weights; the per-frame input norm fixes the length).
            lengths: optional ``(batch,)`` valid samples per chunk: the chunks are taken as
                zero after them (as the reference zero padding), and in eval mode only their
                real frames are computed densely (same output, faster for short clips).

        Returns:
            ``(batch, n_labels)`` logits (apply a sigmoid for probabilities).
        """
        return self.classifier(self.dropout(self.embed(audio, lengths)))
