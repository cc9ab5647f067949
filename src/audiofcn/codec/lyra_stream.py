"""Streaming the Lyra port through compiled plans (:mod:`audiofcn.nn.quantized_stream_plan`).

:class:`~audiofcn.codec.streaming.StreamingEncoder` / ``StreamingDecoder`` use this for a
:class:`~audiofcn.models.lyra_soundstream.LyraSoundStream` on the CPU in float32 when numba is
available and ``fused`` is not False; otherwise they call the model's own ``encode_stream`` /
``decode_stream`` (the eager modules). Same codes and audio as the model's offline ``encode`` /
``decode`` (see the plan module for why, and ``tests/codec/test_lyra_stream_plan.py``); at 20 ms
chunks one frame costs one numba call per direction instead of ~300 torch ops.

The encoder plan takes whole 320-sample frames (samples of a partial frame wait in the state
until the frame completes); the residual VQ codes of all frames of a chunk are found in one call
(:class:`~audiofcn.nn.quantized_stream_plan.SequentialRVQ`, in the offline quantizer's
float operations). Weights and codebooks are snapshotted when a stream
starts. ``state`` is a dict the caller owns, one per stream.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiofcn.models.lyra_soundstream import LyraSoundStream
from audiofcn.nn import quantized_stream_plan
from audiofcn.nn.quantized_stream_plan import QuantizedStreamPlan, SequentialRVQ


def usable(model: Any, fused: bool | None) -> bool:
    """Whether the plans serve ``model``: a Lyra port on the CPU in float32 and in its float
    arithmetic (the plans follow the float ``FakeQuant`` path; the exact arithmetics run the
    model's own layers), numba there, and ``fused`` not False (True without numba is an error,
    as for the c16 plans)."""
    if not isinstance(model, LyraSoundStream) or fused is False or model.arithmetic != "float":
        return False
    if fused and not quantized_stream_plan.AVAILABLE:
        raise RuntimeError("fused kernels unavailable (numba missing or AUDIOFCN_NO_NUMBA)")
    w = model.decoder.last.weight
    return quantized_stream_plan.AVAILABLE and w.device.type == "cpu" \
        and w.dtype == torch.float32


class _Stream:
    """One direction's compiled plan, its per-stream memory and the residual VQ snapshot."""

    def __init__(self, model: LyraSoundStream, encoder: bool, batch: int) -> None:
        if encoder:
            self.plan = QuantizedStreamPlan(model.encoder, model.hop_length, 1)
        else:
            self.plan = QuantizedStreamPlan(model.decoder, 1, model.config.embedding_dim)
        self.mem = self.plan.new_state(batch)
        self.rvq = SequentialRVQ(model.quantizer)
        self.hop = model.hop_length
        self.pending = np.zeros((batch, 0), np.float32)  # samples of an incomplete frame


def _stream(model: LyraSoundStream, state: dict[str, Any], key: str, batch: int) -> _Stream:
    s = state.get(key)
    if s is None:
        s = state[key] = _Stream(model, key == "plan_encoder", batch)
    elif s.mem.shape[0] != batch:
        raise ValueError("the batch size cannot change within a stream")
    return s


def encode_stream(model: LyraSoundStream, chunk: torch.Tensor, state: dict[str, Any],
                  n_q: int) -> torch.Tensor:
    """A chunk ``(batch, 1, n)`` (as :func:`~audiofcn.frontend.checks.as_mono_batch` gives
    it) -> codes of the frames it completed, ``(batch, n_q, m)`` int64."""
    s = _stream(model, state, "plan_encoder", chunk.shape[0])
    x = chunk.detach()[:, 0].float().numpy()
    if s.pending.shape[1]:
        x = np.concatenate([s.pending, x], axis=1)
    whole = x.shape[1] - x.shape[1] % s.hop
    s.pending = x[:, whole:].copy()
    if whole == 0:
        return torch.zeros(x.shape[0], n_q, 0, dtype=torch.long)
    codes = s.plan.encode_frames(x[:, :whole], s.mem, s.rvq, n_q)  # (batch, m, n_q)
    return torch.from_numpy(codes).permute(0, 2, 1)


def decode_stream(model: LyraSoundStream, codes: torch.Tensor, state: dict[str, Any]
                  ) -> torch.Tensor:
    """Codes of ``m`` frames ``(batch, n_q, m)`` -> ``(batch, 1, m * 320)`` audio."""
    if codes.shape[-1] == 0:
        return torch.zeros(codes.shape[0], 1, 0)
    s = _stream(model, state, "plan_decoder", codes.shape[0])
    return torch.from_numpy(s.plan.decode_frames(codes.numpy(), s.mem, s.rvq))[:, None]
