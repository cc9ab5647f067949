"""Stateful streaming encoder and decoder: chunks of any size in, exactly the offline output out.

The encoder emits a frame's codes as soon as its last sample has arrived (latency one frame,
``hop_length`` samples); the decoder turns each frame's codes into ``hop_length`` samples at once.
State is cached convolution context (see :mod:`audiofcn.nn.causal`), not re-computation.
``fused`` (default: when numba is installed) runs the per-chunk glue in the fused kernels of
:mod:`audiofcn.nn.fused_kernels`; ``fused=False`` keeps to torch ops (same output up to float
rounding). For the Lyra port, ``fused`` streams through its compiled plans
(:mod:`audiofcn.codec.lyra_stream`) and ``fused=False`` through the model's eager modules.
"""

from __future__ import annotations

import torch

from audiofcn.codec import lyra_stream
from audiofcn.frontend.checks import as_mono_batch
from audiofcn.models.lyra_soundstream import LyraSoundStream
from audiofcn.models.soundstream import SoundStream
from audiofcn.nn.causal import StreamState


class StreamingEncoder:
    """``push(chunk)`` -> codes of the frames completed so far; ``flush()`` -> the last
    (zero-padded) frame. Concatenated, they equal ``model.encode(whole_signal, n_q)``.

    Shapes: chunk ``(T,)``, ``(batch, T)`` or ``(batch, 1, T)`` -> codes ``(batch, n_q, m)``.
    """

    def __init__(self, model: SoundStream | LyraSoundStream, n_q: int, denoise: bool = False,
                 fused: bool | None = None) -> None:
        if not 1 <= n_q <= model.config.num_quantizers:
            raise ValueError(f"n_q must be in [1, {model.config.num_quantizers}]")
        self.model, self.n_q, self.denoise = model.eval(), n_q, denoise
        self.fused = fused
        self.plans = lyra_stream.usable(model, fused)
        self.state: StreamState = {"fused": fused}
        self.samples = 0  # samples pushed so far
        self.batch = 1

    @property
    def latency_samples(self) -> int:
        return self.model.hop_length

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        x = as_mono_batch(chunk)
        self.samples += x.shape[-1]
        self.batch = x.shape[0]
        return self._encode(x)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.plans:
            if self.denoise:
                raise ValueError("the Lyra model has no denoising mode")
            return lyra_stream.encode_stream(self.model, x, self.state, self.n_q)
        return self.model.encode_stream(x, self.state, self.n_q, self.denoise)

    def flush(self) -> torch.Tensor:
        """Pad the last partial frame with zeros (as the offline encoder does) and emit it."""
        pad = -self.samples % self.model.hop_length
        device = self.model.quantizer.layers[0].codebook.device
        codes = self._encode(torch.zeros(self.batch, 1, pad, device=device))
        self.state = {"fused": self.fused}
        self.samples = 0
        return codes


class StreamingDecoder:
    """``push(codes)`` -> ``hop_length`` samples per frame. Concatenated, the output equals
    ``model.decode(all_codes)``.

    Shapes: codes ``(batch, n_q, m)`` -> audio ``(batch, 1, m * hop_length)``.
    """

    def __init__(self, model: SoundStream | LyraSoundStream, fused: bool | None = None) -> None:
        self.model = model.eval()
        self.fused = fused
        self.plans = lyra_stream.usable(model, fused)
        self.state: StreamState = {"fused": fused}

    def push(self, codes: torch.Tensor) -> torch.Tensor:
        if self.plans:
            return lyra_stream.decode_stream(self.model, codes, self.state)
        return self.model.decode_stream(codes, self.state)

    def reset(self) -> None:
        self.state = {"fused": self.fused}
