"""Streaming STFT: feed chunks of any size, get the frames of the offline STFT."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiofcn.frontend.stft import STFTConfig, make_window


class StreamingSTFT:
    """Chunked STFT with carried state; the concatenated output equals ``STFT`` offline.

    The offline transform (``center=True``, zero padding) sees ``n_fft // 2`` zeros before the
    signal, so the stream starts with them in its buffer and emits a frame as soon as its window
    is complete. :meth:`flush` pads the end the same way and returns the remaining frames.
    Latency is therefore ``n_fft - n_fft // 2`` samples of look-ahead beyond the frame centre.

    Shapes: ``push((..., chunk))`` -> complex ``(..., n_freqs, new_frames)``.
    """

    def __init__(self, config: STFTConfig | None = None) -> None:
        self.config = config or STFTConfig()
        if self.config.pad_mode != "constant" and self.config.center:
            raise ValueError("streaming needs zero padding (pad_mode='constant')")
        self.window = make_window(self.config)
        self.reset()

    def reset(self) -> None:
        self._buffer: torch.Tensor | None = None
        self._total = 0  # samples pushed
        self._emitted = 0  # frames returned

    def _frames(self, buf: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        n = 0 if buf.shape[-1] < c.n_fft else 1 + (buf.shape[-1] - c.n_fft) // c.hop_length
        lead = buf.shape[:-1]
        if n == 0:
            empty = torch.zeros(*lead, c.n_freqs, 0, dtype=torch.complex64, device=buf.device)
            return empty, buf
        used = (n - 1) * c.hop_length + c.n_fft
        flat = buf[..., :used].reshape(-1, used)
        win = self.window.to(buf.device)
        if c.window_length < c.n_fft:  # torch.stft centres a short window inside n_fft
            left = (c.n_fft - c.window_length) // 2
            win = F.pad(win, (left, c.n_fft - c.window_length - left))
        spec = torch.stft(flat, c.n_fft, c.hop_length, c.n_fft, win, center=False,
                          return_complex=True)
        return spec.reshape(*lead, *spec.shape[-2:]), buf[..., n * c.hop_length:]

    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        c = self.config
        if not chunk.is_floating_point() or chunk.dim() == 0:  # O(1): no per-sample checks
            raise ValueError(f"expected a float chunk of shape (..., time), got {chunk.dtype} "
                             f"of shape {tuple(chunk.shape)}")
        if self._buffer is None:
            pad = c.n_fft // 2 if c.center else 0
            self._buffer = F.pad(chunk, (pad, 0))
        else:
            self._buffer = torch.cat([self._buffer, chunk], dim=-1)
        self._total += chunk.shape[-1]
        frames, self._buffer = self._frames(self._buffer)
        self._emitted += frames.shape[-1]
        return frames

    def flush(self) -> torch.Tensor:
        """End of stream: the frames that need the right-hand padding."""
        c = self.config
        if self._buffer is None:
            raise RuntimeError("flush() before any push()")
        expected = 1 + self._total // c.hop_length if c.center else \
            1 + (self._total - c.n_fft) // c.hop_length
        buf = F.pad(self._buffer, (0, c.n_fft // 2)) if c.center else self._buffer
        frames, _ = self._frames(buf)
        frames = frames[..., : max(0, expected - self._emitted)]
        self.reset()
        return frames
