"""Streaming inverse STFT: push frames, get the samples that no later frame can change.

The counterpart of :class:`~audiofcn.frontend.streaming.StreamingSTFT`. It overlap-adds the
windowed inverse FFT of each frame and divides by the overlap-added squared window, exactly as
``torch.istft`` (and :class:`~audiofcn.frontend.stft.ISTFT`) does offline, so the concatenated
output equals the offline inverse. A sample is final once the next frame starts after it, so
the output lags the last pushed frame by ``n_fft - hop`` samples.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audiofcn.frontend.stft import STFTConfig, make_window


class StreamingISTFT:
    """Chunked inverse STFT with carried state.

    Shapes: ``push`` complex ``(..., n_freqs, n_frames)`` -> ``(..., new_samples)``;
    ``flush(length)`` -> the remaining samples so that the total is ``length``.
    """

    def __init__(self, config: STFTConfig | None = None) -> None:
        self.config = config or STFTConfig()
        c = self.config
        win = make_window(c)
        if c.window_length < c.n_fft:  # torch.istft centres a short window inside n_fft
            left = (c.n_fft - c.window_length) // 2
            win = F.pad(win, (left, c.n_fft - c.window_length - left))
        self.window = win
        self.reset()

    def reset(self) -> None:
        self._ola: torch.Tensor | None = None  # overlap-add of frames, from padded index _start
        self._env: torch.Tensor | None = None  # overlap-add of window^2
        self._start = 0  # padded-signal index of _ola[..., 0]
        self._frames = 0  # frames pushed
        self._skip = self.config.n_fft // 2 if self.config.center else 0  # padding to drop
        self._emitted = 0  # signal samples returned

    def _add(self, spec: torch.Tensor) -> None:
        c = self.config
        n = spec.shape[-1]
        win = self.window.to(spec.device)
        frames = torch.fft.irfft(spec.transpose(-1, -2), n=c.n_fft) * win  # (..., n, n_fft)
        end = (self._frames + n - 1) * c.hop_length + c.n_fft  # padded index after last frame
        lead = spec.shape[:-2]
        if self._ola is None:
            self._ola = frames.new_zeros(*lead, 0)
            self._env = frames.new_zeros(0)
        grow = end - self._start - self._ola.shape[-1]
        if grow > 0:
            self._ola = F.pad(self._ola, (0, grow))
            self._env = F.pad(self._env, (0, grow))
        for i in range(n):  # n is 1 or a few frames per push; a loop keeps memory flat
            at = (self._frames + i) * c.hop_length - self._start
            self._ola[..., at:at + c.n_fft] += frames[..., i, :]
            self._env[at:at + c.n_fft] += win.square()
        self._frames += n

    def _take(self, upto: int) -> torch.Tensor:
        """Remove and return normalised samples of padded indices [_start, upto)."""
        n = max(0, upto - self._start)
        out = self._ola[..., :n] / torch.where(self._env[:n] > 1e-11, self._env[:n],
                                               torch.ones_like(self._env[:n]))
        self._ola, self._env = self._ola[..., n:], self._env[n:]
        self._start += n
        drop = min(self._skip, out.shape[-1])  # the centre padding at the very start
        self._skip -= drop
        out = out[..., drop:]
        self._emitted += out.shape[-1]
        return out

    def push(self, spec: torch.Tensor) -> torch.Tensor:
        if spec.shape[-1] == 0:
            lead = spec.shape[:-2]
            return torch.zeros(*lead, 0, device=spec.device)
        self._add(spec)
        return self._take(self._frames * self.config.hop_length)  # next frame starts there

    def flush(self, length: int) -> torch.Tensor:
        """End of stream: the samples up to ``length`` in total (``length`` of the signal the
        frames came from, as ``ISTFT(..., length=length)``)."""
        if self._ola is None:
            raise RuntimeError("flush() before any push()")
        out = self._take(self._start + self._ola.shape[-1])
        need = length - (self._emitted - out.shape[-1])
        out = out[..., :need] if need <= out.shape[-1] else F.pad(out, (0, need - out.shape[-1]))
        self.reset()
        return out
