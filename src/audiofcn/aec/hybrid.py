"""Hybrid echo cancellation: the linear Kalman filter first, the network after it.

The linear stage (:mod:`audiofcn.aec.linear`) removes what a linear echo path explains; an
:class:`~audiofcn.models.echo.EchoCanceller` built with ``hybrid=True`` then sees four complex
spectra from the shared STFT frontend, ``[mic, linear output, echo estimate, reference]``
(the echo estimate is mic minus linear output), and its masks act on the linear output: a
residual echo and noise suppressor (issue 17, item 2).

* :func:`linear_inputs`: whole signals -> the linear output and echo estimate (for training
  batches and offline use);
* :class:`HybridCanceller`: offline :meth:`~HybridCanceller.enhance` and streaming
  :meth:`~HybridCanceller.process` (10 ms hops; the output stream equals the offline output
  delayed by ``output_delay`` = one hop; the linear stage adds no delay).

:class:`HybridCanceller` has the interface of an :class:`~audiofcn.models.echo.EchoCanceller`
that callers use (``enhance``, ``process``, ``open_stream``, ``reset_stream``, ``hop_length``,
``output_delay``, ``algorithmic_latency_ms``, ``config``), so ``audiofcn aec`` and
``audiofcn.cli.aec.load_canceller`` hand out a hybrid checkpoint wrapped in it. Streaming runs
the network through the precomputed per-frame step (:mod:`audiofcn.models.echo_step`, four
inputs), as ``EchoCanceller.process`` does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audiofcn.aec.linear import KalmanConfig, KalmanEchoFilter, kalman_cancel
from audiofcn.models.echo import EchoCanceller


def linear_inputs(mic: np.ndarray, ref: np.ndarray, config: KalmanConfig | None = None
                  ) -> dict[str, np.ndarray]:
    """``{"linear", "echo_est"}`` float32 ``(time,)`` for one example."""
    lin, est = kalman_cancel(mic, ref, config)
    return {"linear": lin, "echo_est": est}


class WithLinearStage:
    """Wraps a dataset of ``{"mic", "ref", ...}`` examples (numpy or tensors, ``(time,)``) and
    adds the linear stage's ``linear`` and ``echo_est`` signals, computed per example (in the
    loader's workers) so a hybrid model trains on what it will see at run time.

    ``keep_last`` (samples): run the linear stage over the whole (longer) example but keep
    only its last ``keep_last`` samples of every signal, so the network trains on a linear
    stage that has had time to converge, as in a call that is under way."""

    def __init__(self, dataset: Any, config: KalmanConfig | None = None,
                 keep_last: int | None = None) -> None:
        self.dataset, self.config, self.keep_last = dataset, config, keep_last

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        ex = dict(self.dataset[i])
        mic, ref = np.asarray(ex["mic"], np.float32), np.asarray(ex["ref"], np.float32)
        extra = linear_inputs(mic, ref, self.config)
        tensor = isinstance(ex["mic"], torch.Tensor)
        for k, v in extra.items():
            ex[k] = torch.from_numpy(v) if tensor else v
        if self.keep_last:
            n = self.keep_last
            ex = {k: v[..., -n:] if hasattr(v, "shape") and v.shape[-1:] == mic.shape else v
                  for k, v in ex.items()}
        return ex


def hybrid_spectra(model: EchoCanceller, batch: dict[str, torch.Tensor]
                   ) -> dict[str, torch.Tensor]:
    """The keyword spectra a hybrid model's ``forward`` takes, from a batch holding
    ``linear`` and ``echo_est`` waveforms ``(batch, time)``; empty for other models."""
    if not model.config.hybrid:
        return {}
    return {"linear_spec": model.stft(batch["linear"]), "echo_spec": model.stft(batch["echo_est"])}


class HybridCanceller:
    """Linear stage + hybrid network, offline and streaming (one stream per instance).

    The linear stage's settings default to the model's ``config.linear_stage`` (what it was
    trained with)."""

    def __init__(self, model: EchoCanceller, linear: KalmanConfig | None = None) -> None:
        if not model.config.hybrid:
            raise ValueError("HybridCanceller needs an EchoCanceller built with hybrid=True")
        cfg = model.config.stft
        if not (cfg.center and cfg.n_fft == 2 * cfg.hop_length and cfg.window_length == cfg.n_fft):
            raise ValueError("HybridCanceller streams 50 %-overlap centred STFTs only")
        self.model = model
        self.linear_config = linear or KalmanConfig(**{"hop": cfg.hop_length,
                                                        **model.config.linear_stage})
        if self.linear_config.hop != cfg.hop_length:
            raise ValueError("the linear stage's hop must equal the STFT hop")
        self.hop = cfg.hop_length
        self.reset_stream()

    # --- the EchoCanceller interface the command line and callers use ----------------------
    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def hop_length(self) -> int:
        return self.hop

    @property
    def output_delay(self) -> int:
        return self.model.output_delay

    @property
    def algorithmic_latency_ms(self) -> float:
        """Frame + look-ahead: the network's one STFT frame; the linear stage adds none."""
        return self.model.algorithmic_latency_ms

    def eval(self) -> HybridCanceller:
        self.model.eval()
        return self

    def open_stream(self) -> HybridCanceller:
        """A new independent stream (one per call) sharing this model's weights."""
        return HybridCanceller(self.model, self.linear_config)

    def enhance(self, mic: Any, ref: Any) -> Any:
        """Offline: ``(time,)`` or ``(batch, time)`` microphone and reference (numpy or
        torch) -> the near-end estimate, same shape and type."""
        if isinstance(mic, torch.Tensor) or isinstance(ref, torch.Tensor):
            m, r = torch.as_tensor(mic).detach().cpu(), torch.as_tensor(ref).detach().cpu()
            return torch.from_numpy(np.asarray(self.enhance(m.float().numpy(),
                                                            r.float().numpy())))
        mic, ref = np.asarray(mic, np.float32), np.asarray(ref, np.float32)
        if mic.shape != ref.shape or mic.ndim not in (1, 2):
            raise ValueError(f"mic {mic.shape} and ref {ref.shape}: need equal (time,) or "
                             "(batch, time) shapes")
        if mic.ndim == 2:
            return np.stack([self._enhance(a, b) for a, b in zip(mic, ref, strict=True)])
        return self._enhance(mic, ref)

    @torch.inference_mode()
    def _enhance(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        # The last frame spans a hop past the end. A stream flushed with zeros (as the
        # command line does) runs the linear stage over those zeros too, and its output
        # there is minus the echo it still predicts, not zero: so run everything over one
        # hop of zeros more than the whole hops, which makes offline equal that stream.
        n = len(mic)
        pad = (-n) % self.hop + self.hop
        mic, ref = np.pad(mic, (0, pad)), np.pad(ref, (0, pad))
        lin = linear_inputs(mic, ref, self.linear_config)
        m = self.model
        sig = {k: torch.as_tensor(np.asarray(v, np.float32))[None] for k, v in
               {"mic": mic, "ref": ref, **lin}.items()}
        out = m(m.stft(sig["mic"]), m.stft(sig["ref"]), m.stft(sig["linear"]),
                m.stft(sig["echo_est"]))["near"]
        return m.istft(out, length=len(mic))[0, :n].numpy()

    def reset_stream(self) -> None:
        self._linear = KalmanEchoFilter(self.linear_config)
        self._state: Any = None
        self._step: Any = None
        n, win = self.hop, self.model.stft.window
        # the analysis frame of the four signals [mic, linear, echo, reference]: previous
        # hop then current hop (zeros at first: the offline STFT's centre padding), reused
        # every hop (a numpy view of it takes each hop's samples without a torch op)
        self._frame = torch.zeros(4, 2 * n)
        self._frame_np = self._frame.numpy()
        self._env = win[:n].square() + win[n:].square()
        self._tail: torch.Tensor | None = None

    @torch.inference_mode()
    def process(self, mic: Any, ref: Any) -> Any:
        """The next ``n`` samples ``(n,)`` (numpy or torch; ``n`` a multiple of the hop) ->
        ``n`` samples of the same type, delayed by :attr:`output_delay`."""
        if self.model.training:
            raise RuntimeError("call model.eval() before streaming (BatchNorm statistics)")
        if isinstance(mic, torch.Tensor) or isinstance(ref, torch.Tensor):
            m, r = torch.as_tensor(mic).detach().cpu(), torch.as_tensor(ref).detach().cpu()
            return torch.from_numpy(self.process(m.double().numpy(), r.double().numpy()))
        mic, ref = np.asarray(mic, np.float64), np.asarray(ref, np.float64)
        lin, est = self._linear.process(mic, ref)  # checks shapes and the hop multiple
        if self._state is None:  # precomputed weights, read once per stream (as EchoStream)
            self._step = self.model.frame_step()
            self._state = self._step.initial_state(1)
        n, fr = self.hop, self._frame_np
        out = torch.empty(len(mic))
        for i in range(0, len(mic), n):
            fr[:, :n] = fr[:, n:]
            for row, sig in enumerate((mic, lin, est, ref)):
                fr[row, n:] = sig[i:i + n]  # float64 -> float32 on the copy
            out[i:i + n] = self._hop()
        return out.numpy()

    def _hop(self) -> torch.Tensor:
        win = self.model.stft.window
        spec = torch.fft.rfft(self._frame * win)[None]  # (1, 4, F)
        near = self._step.step(spec, self._state)[0]
        y = torch.fft.irfft(near, n=2 * self.hop) * win
        out = torch.zeros(self.hop) if self._tail is None else \
            (y[:self.hop] + self._tail) / self._env
        self._tail = y[self.hop:]
        return out
