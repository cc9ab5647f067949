"""Joint acoustic echo cancellation and noise suppression with complex masks.

After Watcharasupat et al. (ICASSP 2022): an end-to-end complex-valued network, no adaptive
filter. The complex STFTs of the microphone ``Y`` and of the far-end reference ``X`` go through
pseudo-complex convolutions and D3Net multidilated dense blocks; two decoders give two bounded
complex masks applied in cascade (the "dual mask")::

    Y1 = M_echo  * Y     # echo removed: near-end + noise
    S  = M_noise * Y1    # noise removed: near-end

With ``masks="echo"`` only the first decoder exists and the output is ``Y1`` (the echo-only
ablation: AEC without noise suppression).

Every layer is causal in time, so the model streams: :meth:`EchoCanceller.process` takes one
hop of microphone and reference samples at a time, carries the STFT, convolution and iSTFT
state, and returns as many samples as it was given; each frame runs through a precomputed
inference step (:mod:`audiofcn.models.echo_step`). The concatenated stream equals the offline
:meth:`EchoCanceller.enhance` output delayed by ``n_fft - hop`` samples. The algorithmic
latency (frame + look-ahead) is one STFT frame, ``n_fft`` samples: 20 ms for the default
320-sample frame at 16 kHz, i.e. the 10 ms hop being collected plus the 10 ms output delay; the
network adds no look-ahead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from audiofcn.frontend import ISTFT, STFT, STFTConfig, StreamingSTFT
from audiofcn.frontend.checks import as_audio, check_stream_frame
from audiofcn.frontend.streaming_istft import StreamingISTFT
from audiofcn.models.base import PretrainedModel
from audiofcn.models.echo_step import EchoFrameStep
from audiofcn.nn.complex import (
    ComplexBNAct,
    ComplexConv2d,
    ComplexConvTranspose2d,
    bounded_complex_mask,
    complex_to_channels,
)
from audiofcn.nn.multidilated import MultiDilatedDenseBlock


def _default_stft() -> STFTConfig:
    # 20 ms sqrt-Hann frames, 10 ms hop: analysis * synthesis window = Hann, which overlap-adds
    # to a constant at 50 % overlap; 20 ms is the whole algorithmic latency.
    return STFTConfig(n_fft=320, hop_length=160, window="sqrt_hann")


@dataclass
class EchoCancellerConfig:
    sample_rate: int = 16000
    stft: STFTConfig = field(default_factory=_default_stft)
    compress: float = 0.3  # network input: X |X|^(c-1), power-law compressed magnitude
    encoder_channels: tuple[int, ...] = (16, 32)  # complex channels; each stage strides freq 4x
    bottleneck_channels: int = 62  # complex channels of the dense blocks
    growth: int = 36  # complex channels added by each dense layer
    layers_per_block: int = 4  # dilations 1, 2, 4, 8 (time receptive field 16 frames/block)
    num_blocks: int = 2
    masks: str = "dual"  # "dual" (echo then noise mask) or "echo" (ablation)
    # Opt-in full-resolution refinement (0: off, the shipped layout). Complex channels of the
    # per-bin convs that correct each decoder's coarse mask from the mask itself and the
    # compressed mic/ref spectra of the same frame; one hidden conv per dilation.
    refine_channels: int = 0
    refine_dilations: tuple[int, ...] = (1, 2, 4)
    refine_kernel: int = 5  # frequency taps of every refinement conv (odd: centred, "same")
    # Frames of the compressed reference the refinement reads per bin (1: the current frame
    # only). More frames let it see where the echo in a bin comes from: the reference's past.
    refine_history: int = 1
    # Hybrid input (issue 17): four complex inputs [mic, linear output, echo estimate,
    # reference] (a linear adaptive filter runs first, audiofcn.aec.hybrid) and the masks act
    # on the linear output instead of the microphone. Off: the shipped end-to-end layout.
    hybrid: bool = False
    # Hybrid only: overrides of the linear stage's settings (audiofcn.aec.linear.KalmanConfig
    # fields) it was trained with, so that inference runs the same linear stage.
    linear_stage: dict[str, Any] = field(default_factory=dict)


def _strided_size(n: int) -> int:
    return (n + 2 * 3 - 7) // 4 + 1  # kernel 7, stride 4, padding 3


class _Refine(nn.Module):
    """Full-resolution mask refinement: ``coarse + R([coarse, mic, ref])``.

    The dense blocks see 11 frequency bands, and the transposed convs rebuild 161 bins from
    41, so the coarse mask cannot follow a talker's harmonics bin by bin (the banded Wiener
    oracles in docs/aec.md). These convs see every bin of the current frame's compressed
    mic/ref spectra next to the coarse mask. Their kernels span one frame, so they add no
    latency; the output conv starts at zero, so an initialised model (or a checkpoint without
    these weights) starts from exactly its coarse mask. With ``history > 1`` a causal
    per-bin conv over the reference's last ``history`` frames adds to the first layer: the
    only part with streaming state (its past reference frames).
    """

    def __init__(self, channels: int, dilations: tuple[int, ...], kernel: int,
                 history: int = 1, inputs: int = 2) -> None:
        super().__init__()
        self.inputs = inputs  # complex network inputs; the reference is the last one
        if kernel % 2 == 0 or channels < 1 or not dilations or history < 1:
            raise ValueError("refinement needs an odd kernel, channels >= 1, >= 1 dilation, "
                             "history >= 1")
        self.history = ComplexConv2d(1, channels, (1, history)) if history > 1 else None
        self.convs = nn.ModuleList()
        self.acts = nn.ModuleList()
        cin = 1 + inputs  # complex: coarse mask, then the network inputs' features
        for d in dilations:
            self.convs.append(ComplexConv2d(cin, channels, (kernel, 1), dilation=(d, 1)))
            self.acts.append(ComplexBNAct(channels))
            cin = channels
        self.out = ComplexConv2d(cin, 1, (kernel, 1))
        for t in (self.out.weight_real, self.out.weight_imag):
            nn.init.zeros_(t)

    def forward(self, coarse: torch.Tensor, feats: torch.Tensor,
                state: dict[Any, Any] | None = None) -> torch.Tensor:
        # coarse (B, 2, F, T) [re, im]; feats (B, 2n, F, T): the n inputs' real parts, then
        # their imaginary parts (n = 2: [mic, ref]; hybrid, n = 4: [mic, linear, echo, ref])
        n = self.inputs
        h = torch.cat([coarse[:, :1], feats[:, :n], coarse[:, 1:], feats[:, n:]], dim=1)
        for i, (conv, act) in enumerate(zip(self.convs, self.acts, strict=True)):
            h = conv(h)
            if i == 0 and self.history is not None:
                ref = feats[:, n - 1::n]  # (B, 2, F, T): [ref re, ref im]
                h = h + (self.history(ref) if state is None
                         else self.history.forward_stream(ref, state))
            h = act(h)
        return coarse + self.out(h)


class _MaskDecoder(nn.Module):
    """Bottleneck -> (channels x freq) unfold -> transposed complex convs -> one complex mask."""

    def __init__(self, bottleneck: int, channels: list[int], freq_sizes: list[int],
                 refine: _Refine | None = None) -> None:
        super().__init__()
        self.refine = refine
        # channels/freq_sizes: encoder side from the input, e.g. [2, 16, 32] / [161, 41, 11]
        self.channels, self.freqs = channels[-1], freq_sizes[-1]
        self.unfold = ComplexConv2d(bottleneck, channels[-1] * freq_sizes[-1], (1, 1))
        self.unfold_act = ComplexBNAct(channels[-1] * freq_sizes[-1])
        self.ups = nn.ModuleList()
        self.acts = nn.ModuleList()
        for i in range(len(channels) - 1, 0, -1):
            out = channels[i - 1] if i > 1 else 1
            outpad = freq_sizes[i - 1] - ((freq_sizes[i] - 1) * 4 - 6 + 7)
            self.ups.append(ComplexConvTranspose2d(channels[i], out, 7, stride_freq=4,
                                                   padding_freq=3, output_padding=outpad))
            self.acts.append(ComplexBNAct(out) if i > 1 else nn.Identity())

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor], feats: torch.Tensor,
                state: dict[Any, Any] | None = None) -> torch.Tensor:
        # h: (B, 2*bottleneck, 1, T); skips: encoder outputs, deepest first; feats: the
        # network input (B, 4, F, T), read by the refinement only
        h = self.unfold_act(self.unfold(h) if state is None else
                            self.unfold.forward_stream(h, state))
        b, _, _, t = h.shape
        h = h.reshape(b, 2 * self.channels, self.freqs, t) + skips[0]
        for i, (up, act) in enumerate(zip(self.ups, self.acts, strict=True)):
            h = act(up(h))
            if i + 1 < len(skips):
                h = h + skips[i + 1]
        return h if self.refine is None else self.refine(h, feats, state)


class EchoCanceller(PretrainedModel):
    """Complex multidilated dense CNN for joint AEC + NS (see the module docstring).

    Layout: two pseudo-complex encoder convs (kernel 7x2, frequency stride 4: 161 -> 41 -> 11
    bins), the (channels x frequency) map folded into one complex feature vector per frame and
    projected to ``bottleneck_channels``, ``num_blocks`` D3Net multidilated dense blocks over
    time (dilations ``2^i``), then one decoder per mask (unfold, transposed convs, encoder
    skips). Folding frequency into channels keeps the dense blocks' cost per frame equal to
    their parameter count, which is what lets the 354K-parameter model stream on one thread.
    """

    model_name = "echo_canceller"
    config_class = EchoCancellerConfig

    def __init__(self, config: EchoCancellerConfig | None = None) -> None:
        config = config or EchoCancellerConfig()
        super().__init__(config)
        if config.masks not in ("dual", "echo"):
            raise ValueError(f"masks must be 'dual' or 'echo', got {config.masks!r}")
        self.stft = STFT(config.stft)
        self.istft = ISTFT(config.stft)
        # complex inputs: microphone, reference (+ linear output and echo estimate if hybrid)
        chans = [4 if config.hybrid else 2, *config.encoder_channels]
        sizes = [config.stft.n_freqs]
        self.encoder = nn.ModuleList()
        self.encoder_acts = nn.ModuleList()
        for cin, cout in zip(chans[:-1], chans[1:], strict=True):
            self.encoder.append(ComplexConv2d(cin, cout, (7, 2), stride_freq=4, padding_freq=3))
            self.encoder_acts.append(ComplexBNAct(cout))
            sizes.append(_strided_size(sizes[-1]))
        self.folded = chans[-1] * sizes[-1]
        self.fold = ComplexConv2d(self.folded, config.bottleneck_channels, (1, 1))
        self.fold_act = ComplexBNAct(config.bottleneck_channels)
        self.blocks = nn.ModuleList(
            MultiDilatedDenseBlock(config.bottleneck_channels, config.growth,
                                   config.layers_per_block, (1, 2))
            for _ in range(config.num_blocks))
        names = ["echo", "noise"] if config.masks == "dual" else ["echo"]

        def refine() -> _Refine | None:
            if not config.refine_channels:
                return None
            return _Refine(config.refine_channels, tuple(config.refine_dilations),
                           config.refine_kernel, config.refine_history, chans[0])

        self.decoders = nn.ModuleDict(
            {n: _MaskDecoder(config.bottleneck_channels, chans, sizes, refine())
             for n in names})
        self._stream: EchoStream | None = None
        self._step: tuple[tuple[tuple[int, int], ...], EchoFrameStep] | None = None

    # --- properties -----------------------------------------------------------------------
    @property
    def hop_length(self) -> int:
        return self.config.stft.hop_length

    @property
    def output_delay(self) -> int:
        """Samples by which :meth:`process`'s output stream lags its input stream."""
        return self.config.stft.n_fft - self.config.stft.hop_length

    @property
    def algorithmic_latency_ms(self) -> float:
        """Frame + look-ahead: one STFT frame (the network is causal, no look-ahead)."""
        return 1000.0 * self.config.stft.n_fft / self.config.sample_rate

    @property
    def time_receptive_field(self) -> int:
        """Frames of past context the masks depend on (encoder + dense blocks)."""
        return 1 + len(self.encoder) + sum(b.time_receptive_field - 1 for b in self.blocks)

    # --- network --------------------------------------------------------------------------
    def _features(self, *specs: torch.Tensor) -> torch.Tensor:
        z = torch.stack(specs, dim=1)  # (B, 2 or 4, F, T) complex
        mag = z.abs().clamp_min(1e-8)
        return complex_to_channels(z * mag.pow(self.config.compress - 1.0))

    def _inputs(self, mic_spec: torch.Tensor, ref_spec: torch.Tensor,
                linear_spec: torch.Tensor | None, echo_spec: torch.Tensor | None
                ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """(network inputs, the spectrum the masks act on)."""
        if not self.config.hybrid:
            if linear_spec is not None or echo_spec is not None:
                raise ValueError("linear/echo spectra given to a non-hybrid echo canceller")
            return (mic_spec, ref_spec), mic_spec
        if linear_spec is None or echo_spec is None:
            raise ValueError("a hybrid echo canceller needs the linear output and echo "
                             "estimate spectra (see audiofcn.aec.hybrid)")
        return (mic_spec, linear_spec, echo_spec, ref_spec), linear_spec

    def _run(self, mic_spec: torch.Tensor, ref_spec: torch.Tensor,
             state: dict[Any, Any] | None, linear_spec: torch.Tensor | None = None,
             echo_spec: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        inputs, target = self._inputs(mic_spec, ref_spec, linear_spec, echo_spec)
        h = feats = self._features(*inputs)
        skips = []
        for conv, act in zip(self.encoder, self.encoder_acts, strict=True):
            h = act(conv(h) if state is None else conv.forward_stream(h, state))
            skips.append(h)
        b, _, _, t = h.shape  # (B, 2*C, F', T) -> (B, 2*C*F', 1, T): real parts stay first
        h = h.reshape(b, 2 * self.folded, 1, t)
        h = self.fold_act(self.fold(h) if state is None else self.fold.forward_stream(h, state))
        for block in self.blocks:
            h = block(h) if state is None else block.forward_stream(h, state)
        skips = skips[::-1]  # deepest first
        out: dict[str, torch.Tensor] = {}
        echo = self.decoders["echo"](h, skips, feats, state)
        out["echo_mask"] = bounded_complex_mask(echo)
        out["near_noisy"] = out["echo_mask"] * target
        if "noise" in self.decoders:
            noise = self.decoders["noise"](h, skips, feats, state)
            out["noise_mask"] = bounded_complex_mask(noise)
            out["near"] = out["noise_mask"] * out["near_noisy"]
        else:
            out["near"] = out["near_noisy"]
        return out

    def forward(self, mic_spec: torch.Tensor, ref_spec: torch.Tensor,
                linear_spec: torch.Tensor | None = None,
                echo_spec: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Masks and estimates from complex spectra.

        Args:
            mic_spec: complex ``(batch, n_freqs, frames)`` STFT of the microphone.
            ref_spec: complex ``(batch, n_freqs, frames)`` STFT of the far-end reference.
            linear_spec, echo_spec: hybrid models only (``config.hybrid``): the same STFT of
                the linear adaptive filter's output and of its echo estimate (mic minus
                output); the masks then act on ``linear_spec`` (``near_noisy = echo_mask *
                linear_spec``).

        Returns:
            complex ``(batch, n_freqs, frames)`` tensors: ``echo_mask``, ``near_noisy``
            (= echo_mask * mic: near-end + noise), ``near`` (the final near-end estimate) and,
            for ``masks="dual"``, ``noise_mask`` (``near = noise_mask * near_noisy``).
        """
        return self._run(mic_spec, ref_spec, None, linear_spec, echo_spec)

    def forward_stream(self, mic_spec: torch.Tensor, ref_spec: torch.Tensor,
                       state: dict[Any, Any], linear_spec: torch.Tensor | None = None,
                       echo_spec: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """As :meth:`forward` for the next frames of a stream; ``state`` (a dict the caller
        owns, initially empty) carries the convolution caches between calls."""
        return self._run(mic_spec, ref_spec, state, linear_spec, echo_spec)

    def enhance(self, mic: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Offline: ``(batch, time)`` microphone and reference -> ``(batch, time)`` near-end."""
        mic = as_audio(mic, expect="(batch, time)", name="mic")
        ref = as_audio(ref, expect="(batch, time)", name="ref")
        if mic.shape != ref.shape:
            raise ValueError(f"mic {tuple(mic.shape)} and ref {tuple(ref.shape)} differ")
        spec = self(self.stft(mic), self.stft(ref))["near"]
        return self.istft(spec, length=mic.shape[-1])

    # --- streaming ------------------------------------------------------------------------
    def open_stream(self, delay: int | None = None) -> EchoStream:
        """A new independent stream (one per call/channel) sharing this model's weights.

        ``delay`` (samples) is how far the output lags the input: the default
        :attr:`output_delay` needs chunks whose sizes are multiples of the hop; ``n_fft - 1``
        works for chunks of any size."""
        return EchoStream(self, delay)

    def frame_step(self) -> EchoFrameStep:
        """The precomputed per-frame inference step (:mod:`audiofcn.models.echo_step`),
        rebuilt when a parameter or BatchNorm statistic changed since it was last built."""
        key = tuple((t._version, t.data_ptr()) for t in (*self.parameters(), *self.buffers()))
        if self._step is None or self._step[0] != key:
            with torch.no_grad():
                self._step = (key, EchoFrameStep(self))
        return self._step[1]

    def process(self, mic_frame: torch.Tensor, ref_frame: torch.Tensor) -> torch.Tensor:
        """Streaming: the next ``n`` samples of microphone and reference (``(n,)`` or
        ``(batch, n)``; any ``n``, typically one hop) -> ``n`` output samples, delayed by
        :attr:`output_delay`. State is carried in the model's default stream;
        :meth:`reset_stream` starts a new one."""
        if self._stream is None:
            self._stream = self.open_stream()
        return self._stream.process(mic_frame, ref_frame)

    def reset_stream(self) -> None:
        self._stream = None


class EchoStream:
    """Carried state of one stream: analysis frame, network state, overlap-add, delay line.

    Every frame goes through the model's precomputed :class:`EchoFrameStep`. With the default
    delay and a 50 %-overlap STFT (the default), calls take whole hops and run the "hop
    path": the analysis frame is the previous hop plus this one, the overlap-add tail is one
    hop, and nothing else is buffered. Otherwise (``delay`` given, chunks of any size) the
    chunked :class:`StreamingSTFT` / :class:`StreamingISTFT` and an output FIFO frame it.
    Both equal the offline :meth:`EchoCanceller.enhance` output, delayed by ``delay``.
    """

    def __init__(self, model: EchoCanceller, delay: int | None = None) -> None:
        if model.config.hybrid:
            raise ValueError("a hybrid echo canceller streams through "
                             "audiofcn.aec.HybridCanceller (it runs the linear stage first)")
        self.model = model
        self.delay = model.output_delay if delay is None else int(delay)
        if self.delay < model.output_delay:
            raise ValueError(f"delay must be >= {model.output_delay} samples")
        cfg = model.config.stft
        self.hop = cfg.hop_length
        self._hop_path = (self.delay == model.output_delay and cfg.center
                          and cfg.n_fft == 2 * cfg.hop_length and cfg.window_length == cfg.n_fft)
        self.stft = StreamingSTFT(cfg)
        self.istft = StreamingISTFT(cfg)
        win = model.stft.window  # a buffer: on the model's device
        self._win = win
        self._env = win[:self.hop].square() + win[self.hop:].square()  # = torch.istft's
        self._step = None if model.training else model.frame_step()
        self.state: list[Any] | None = None
        self._prev: torch.Tensor | None = None  # hop path: previous input hop (B, 2, hop)
        self._tail: torch.Tensor | None = None  # hop path: overlap-add tail (B, hop)
        self._pending: torch.Tensor | None = None  # delay line so each call returns n samples
        self._batch: int | None = None  # fixed by the first call

    @torch.inference_mode()
    def process(self, mic_frame: torch.Tensor, ref_frame: torch.Tensor) -> torch.Tensor:
        if self.model.training:
            raise RuntimeError("call model.eval() before streaming (BatchNorm statistics)")
        mic_frame, ref_frame = torch.as_tensor(mic_frame), torch.as_tensor(ref_frame)
        if mic_frame.shape != ref_frame.shape:
            raise ValueError(f"mic frame {tuple(mic_frame.shape)} and ref frame "
                             f"{tuple(ref_frame.shape)} differ")
        self._batch = check_stream_frame(mic_frame, self._batch)  # O(1): runs every 10 ms
        squeeze = mic_frame.dim() == 1
        both = torch.stack([mic_frame, ref_frame], dim=-2)  # (..., 2, n)
        if both.dtype != torch.float32:
            both = both.float()
        if squeeze:
            both = both.unsqueeze(0)
        if self._step is None:  # opened in training mode
            self._step = self.model.frame_step()
        n = both.shape[-1]
        if self._hop_path:
            if n % self.hop:
                raise ValueError(f"chunk of {n} samples: with a delay of {self.delay} "
                                 f"samples, chunk sizes must be multiples of the hop "
                                 f"({self.hop}); use open_stream(delay=n_fft - 1) for chunks "
                                 "of any size")
            out = self._hops(both) if n == self.hop else torch.cat(
                [self._hops(both[..., i:i + self.hop]) for i in range(0, n, self.hop)], -1)
        else:
            out = self._chunk(both)
        return out[0] if squeeze else out

    def _hops(self, x: torch.Tensor) -> torch.Tensor:
        """One hop ``(B, 2, hop)`` in, one hop out (delayed by ``n_fft - hop``)."""
        if self._prev is None:  # offline centre padding: n_fft // 2 = hop zeros
            self._prev = torch.zeros_like(x)
            self.state = self._step.initial_state(x.shape[0])
        spec = torch.fft.rfft(torch.cat([self._prev, x], dim=-1) * self._win)
        self._prev = x
        y = torch.fft.irfft(self._step.step(spec, self.state), n=2 * self.hop) * self._win
        first = self._tail is None  # its first half is the centre padding: not output
        out = torch.zeros_like(y[:, :self.hop]) if first else \
            (y[:, :self.hop] + self._tail) / self._env
        self._tail = y[:, self.hop:]
        return out

    def _chunk(self, both: torch.Tensor) -> torch.Tensor:
        spec = self.stft.push(both)  # (B, 2, F, frames)
        if spec.shape[-1]:
            if self.state is None:
                self.state = self._step.initial_state(spec.shape[0])
            near = [self._step.step(spec[..., t], self.state) for t in range(spec.shape[-1])]
            out = self.istft.push(torch.stack(near, dim=-1))
        else:
            out = both.new_zeros(both.shape[0], 0)
        if self._pending is None:
            self._pending = both.new_zeros(both.shape[0], self.delay)
        buf = torch.cat([self._pending, out], dim=-1)
        n = both.shape[-1]
        if buf.shape[-1] < n:
            raise ValueError(f"chunk of {n} samples: with a delay of {self.delay} samples, "
                             f"chunk sizes must be multiples of the hop ({self.hop}); use "
                             "open_stream(delay=n_fft - 1) for chunks of any size")
        result, self._pending = buf[:, :n], buf[:, n:]
        return result
