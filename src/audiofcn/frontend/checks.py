"""Input checks for waveforms given to frontends and models (cheap: one pass for NaN/Inf on
whole-signal calls, shape and dtype only on streaming chunks)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _compiling() -> bool:
    return torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.jit.is_scripting()


def as_audio(x: Any, *, expect: str = "(..., time)", min_time: int = 1,
             time_first_below: int = 0, finite: bool = True,
             name: str = "audio") -> torch.Tensor:
    """``x`` as a floating-point tensor with time on the last axis, or a ValueError saying what
    was expected.

    Accepted: torch float tensors (float16/bfloat16/float32/float64, kept as they are) and NumPy
    float arrays (converted without a copy). Refused: integer, bool and complex samples (scale
    integer PCM to [-1, 1] floats first), 0-D tensors, an empty time axis or one shorter
    than ``min_time``, input that looks time-first (last axis shorter than
    ``time_first_below`` while the one before is not), and NaN/Inf (``finite``).
    """
    if _compiling():
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise ValueError(f"{name}: expected float samples of shape {expect}, got a NumPy "
                             f"{x.dtype} array of shape {x.shape} (scale integer PCM to [-1, 1] "
                             "floats)")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name}: expected a float tensor of shape {expect}, got "
                         f"{type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a float32 (or float64) tensor of shape {expect}, "
                         f"got {x.dtype} of shape {tuple(x.shape)} (scale integer PCM to "
                         "[-1, 1] floats)")
    if x.dim() == 0:
        raise ValueError(f"{name}: expected a float tensor of shape {expect}, got a scalar")
    t = x.shape[-1]
    if t == 0 or x.numel() == 0:
        raise ValueError(f"{name}: expected a float tensor of shape {expect} with samples, got "
                         f"shape {tuple(x.shape)}")
    if x.dim() >= 2 and t < time_first_below <= x.shape[-2]:
        raise ValueError(f"{name}: expected a float tensor of shape {expect}, got shape "
                         f"{tuple(x.shape)}: time-first input? transpose (time, channels) to "
                         "(channels, time)")
    if t < min_time:
        raise ValueError(f"{name}: expected a float tensor of shape {expect} with at least "
                         f"{min_time} samples on the last axis, got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite samples of shape {expect}, got NaN or Inf")
    return x


def check_positive(value: Any, what: str) -> None:
    """Raise ValueError unless ``value`` is a number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")


def check_stream_frame(frame: torch.Tensor, batch: int | None) -> int:
    """O(1) checks for one frame ``(n,)`` or ``(batch, n)`` of a stream whose batch size is
    ``batch`` (``None``: the first frame fixes it). Returns the batch size."""
    if not frame.is_floating_point() or frame.dim() not in (1, 2):
        raise ValueError(f"expected float frames of shape (n,) or (batch, n), got "
                         f"{frame.dtype} of shape {tuple(frame.shape)}")
    if frame.shape[-1] == 0:
        raise ValueError("expected frames of shape (n,) or (batch, n) with n > 0, got 0 samples")
    b = 1 if frame.dim() == 1 else frame.shape[0]
    if batch is not None and b != batch:
        raise ValueError(f"this stream has batch size {batch}, got frames of batch {b}; open a "
                         "new stream (open_stream/reset_stream) for another batch size")
    return b


def as_mono_batch(audio: torch.Tensor) -> torch.Tensor:
    """``(T,)``, ``(batch, T)`` or ``(batch, 1, T)`` audio as ``(batch, 1, T)`` (the codecs'
    input layout), or a ValueError naming the shape it got."""
    if audio.dim() == 1:
        audio = audio[None, None]
    elif audio.dim() == 2:
        audio = audio[:, None]
    if audio.dim() != 3 or audio.shape[1] != 1:
        raise ValueError(f"expected audio (batch, 1, T) or (batch, T), got "
                         f"{tuple(audio.shape)}")
    return audio


__all__ = ["as_audio", "as_mono_batch", "check_positive", "check_stream_frame"]

