"""Linear echo cancellation: a partitioned-block frequency-domain Kalman filter (PFDKF).

The loudspeaker reference ``x`` reaches the microphone through a linear echo path ``w``::

    mic = w * x + s        (s: near-end talker + noise)

and the filter tracks ``w`` block by block in the frequency domain (overlap-save, blocks of
``hop`` samples, FFT of ``2 * hop``, ``partitions`` blocks of taps: 26 x 160 = 4160 taps =
260 ms at 16 kHz by default). It is the state-space form of the partitioned-block frequency
domain adaptive filter (Enzner & Vary 2006; Kuech, Mabande & Enzner 2014): per partition and
bin, a first-order Markov model of the echo path (transition factor ``a``) and a diagonal
state-error covariance ``P``. The Kalman gain

    mu_p(k) = P_p(k) / (0.5 * sum_q P_q(k) |X_q(k)|^2 + Psi_s(k))

divides by the power of what the model cannot explain, ``Psi_s`` (near-end speech, noise and,
while converging, residual echo; estimated from the recent error), so the step shrinks by
itself when the near end talks (double-talk robust, no separate detector) and is large while
the state is uncertain (fast initial convergence, re-convergence after a path change because
the process noise ``(1 - a^2) |W|^2`` keeps ``P`` from collapsing).

Streaming: :class:`KalmanEchoFilter` takes any multiple of ``hop`` samples per call and
returns the linear output (``mic`` minus the echo estimate) and the echo estimate for the
same samples: no look-ahead, no delay beyond collecting the hop. :func:`kalman_cancel` runs a
whole signal through it (the same arithmetic, so streaming equals offline exactly).
Float64; the per-block elementwise work runs in one numba pass when numba is installed
(:mod:`audiofcn.aec.kalman_kernels`, a numpy version of the same arithmetic otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audiofcn.aec import kalman_kernels as kernels

_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"  # np.fft.* take out=


@dataclass
class KalmanConfig:
    hop: int = 160  # block = hop (10 ms at 16 kHz); FFT of 2 * hop
    partitions: int = 26  # taps = hop * partitions (260 ms at 16 kHz)
    a: float = 0.99  # echo-path transition factor (process noise (1 - a^2) |W|^2)
    p_init: float = 1.0  # initial state-error variance of each partition's transfer function
    # (1: echo-path gains up to about unity are plausible)
    noise_smoothing: float = 0.5  # recursive smoothing of the error power Psi_s per bin
    reg: float = 0.05  # regulariser: bins whose reference power is below this fraction of
    # the average bin's (band limits, DC) get no more than that average's step
    ref_floor_db: float = -70.0  # reference below this level (dBFS) counts as silent: no
    # adaptation starts on it, and it is the least power any bin is normalised by
    delay: int = 0  # bulk delay (samples) applied to the reference before filtering
    constrain_every: int = 1  # gradient constraint on every partition each k-th block
    dc_notch: float = 0.982  # pole radius of the DC notch on the microphone (0: off)
    two_filters: bool = True  # output a foreground copy, updated only when the adapting
    # (background) filter is reliably better; the background restarts from the foreground
    # when it is reliably worse (divergence in double talk)


class KalmanEchoFilter:
    """Streaming PFDKF. ``process(mic, ref)`` -> ``(linear_out, echo_estimate)``, each
    ``(n,)`` for ``n`` a multiple of ``hop``; state is carried between calls."""

    def __init__(self, config: KalmanConfig | None = None) -> None:
        self.cfg = config or KalmanConfig()
        if self.cfg.hop < 1 or self.cfg.partitions < 1 or self.cfg.delay < 0:
            raise ValueError(f"bad KalmanConfig {self.cfg}")
        self.reset()

    @property
    def taps(self) -> int:
        return self.cfg.hop * self.cfg.partitions

    def reset(self) -> None:
        n, p = self.cfg.hop, self.cfg.partitions
        bins = n + 1
        self._xbuf = np.zeros(2 * n)  # [previous block, current block] of the reference
        self._delay = np.zeros(self.cfg.delay)  # reference samples not yet released
        self.X = np.zeros((p, bins), np.complex128)  # newest partition first
        self.W = np.zeros((p, bins), np.complex128)
        self.P = np.full((p, bins), np.nan)  # set from the first signal level seen
        self.psi_s = np.zeros(bins)
        self.Wf = np.zeros((p, bins), np.complex128)  # foreground (output) filter
        self._davg, self._dvar = 0.0, 0.0
        self._level = 0.0  # long-term mean reference power per bin
        self._floor = 2 * n * 10 ** (self.cfg.ref_floor_db / 10)  # bin power of a silent ref
        self._count = 0
        self._notch = np.zeros(2)  # DC notch state: previous input and output
        self._sums = np.zeros((2, bins), np.complex128)  # the two filters' outputs (spectra)
        self._ebuf = np.zeros(2 * n)  # [zeros, this block's error]
        self._wtime = np.zeros((p, 2 * n))  # the partitions' impulse responses (constraint)

    def _delayed(self, ref: np.ndarray) -> np.ndarray:
        if not self.cfg.delay:
            return ref
        joined = np.concatenate([self._delay, ref])
        self._delay = joined[len(ref):]
        return joined[:len(ref)]

    def _dc_notch(self, x: np.ndarray) -> np.ndarray:
        """``y[t] = x[t] - x[t-1] + r * y[t-1]``: removes the microphone's DC offset, which
        the reference cannot explain and which would otherwise dominate the lowest bins."""
        return kernels.dc_notch(x, self.cfg.dc_notch, self._notch)

    def _block(self, d: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, n = self.cfg, self.cfg.hop
        self._xbuf[:n] = self._xbuf[n:]
        self._xbuf[n:] = x
        self.X[1:] = self.X[:-1]
        self.X[0] = np.fft.rfft(self._xbuf)
        s, sf = self._sums
        kernels.filter_sums(self.W, self.Wf, self.X, s, sf, c.two_filters)
        # both filters' outputs in one inverse FFT call (rows: background, foreground)
        ys = np.fft.irfft(self._sums if c.two_filters else s, n=2 * n, axis=-1)[..., n:]
        y = ys[0] if c.two_filters else ys
        e = d - y
        self._ebuf[n:] = e
        E = np.fft.rfft(self._ebuf)
        x0 = self.X[0]
        x2 = x0.real * x0.real + x0.imag * x0.imag  # the newest partition's power
        e2 = E.real * E.real + E.imag * E.imag
        yb, eb = y, e
        if c.two_filters:
            y = ys[1]
            e = d - y
        if np.isnan(self.P[0, 0]):
            pd, px = float(np.mean(e2)), float(np.mean(x2))
            if pd < 1e-12 or px < self._floor:  # wait for signal at both ends
                return e, y
            self.P[:] = c.p_init
            self.psi_s[:] = e2
        b = c.noise_smoothing
        self.psi_s = b * self.psi_s + (1 - b) * e2
        lvl = float(np.mean(x2))
        if lvl > self._floor:  # track the level of the active reference only
            self._level = lvl if self._level == 0.0 else 0.99 * self._level + 0.01 * lvl
        # mu = P / (0.5 sum P |X|^2 + psi_s + 0.5 max(reg level, floor) sum P), W += mu X* E,
        # P = a^2 (1 - 0.5 mu |X|^2) P + (1 - a^2) |W|^2 (one fused pass; see kalman_kernels)
        kernels.kalman_update(self.W, self.P, self.X, E, self.psi_s,
                              0.5 * max(c.reg * self._level, self._floor), c.a * c.a)
        self._count += 1
        if self._count % c.constrain_every == 0:
            # keep each partition causal and block-long (linear convolution); numpy >= 2
            # writes the transforms into reused buffers (less cache traffic per block)
            if _FFT_OUT:
                w = np.fft.irfft(self.W, n=2 * n, axis=-1, out=self._wtime)
                w[:, n:] = 0.0
                np.fft.rfft(w, axis=-1, out=self.W)
            else:  # pragma: no cover - numpy < 2
                w = np.fft.irfft(self.W, n=2 * n, axis=-1)
                w[:, n:] = 0.0
                self.W = np.fft.rfft(w, axis=-1)
        if c.two_filters:
            e, y = self._compare(d, e, y, eb, yb)
        return e, y

    def _compare(self, d: np.ndarray, ef: np.ndarray, yf: np.ndarray, eb: np.ndarray,
                 yb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Foreground/background decision on this block's errors (the two-path scheme of
        Ochiai et al. 1977 as speexdsp's MDF uses it): a difference in error energy counts
        only when it is large against the energy of the two filters' disagreement."""
        sff, sbb = float(ef @ ef), float(eb @ eb)
        dbf = float((ef - eb) @ (ef - eb)) + 1e-12
        diff = sff - sbb
        self._davg = 0.6 * self._davg + 0.4 * diff
        self._dvar = 0.36 * self._dvar + 0.16 * sff * dbf
        if (diff > 0 and diff * diff > sff * dbf) or (
                self._davg > 0 and self._davg ** 2 > 0.25 * self._dvar):
            self.Wf = self.W.copy()  # background better: it becomes the output filter
            self._davg, self._dvar = 0.0, 0.0
            return eb, yb
        if (diff < 0 and diff * diff > 4.0 * sff * dbf) or (
                self._davg < 0 and self._davg ** 2 > 4.0 * self._dvar):
            self.W = self.Wf.copy()  # background diverged: restart it from the foreground
            self._davg, self._dvar = 0.0, 0.0
        return ef, yf

    def process(self, mic: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mic = np.asarray(mic, np.float64)
        ref = np.asarray(ref, np.float64)
        n = self.cfg.hop
        if mic.ndim != 1 or mic.shape != ref.shape:
            raise ValueError(f"mic {mic.shape} and ref {ref.shape} must be equal 1-D shapes")
        if len(mic) % n:
            raise ValueError(f"{len(mic)} samples is not a multiple of the hop ({n})")
        ref = self._delayed(ref)
        d = self._dc_notch(mic) if self.cfg.dc_notch else mic
        out = np.empty_like(mic)
        for i in range(0, len(mic), n):
            out[i:i + n] = self._block(d[i:i + n], ref[i:i + n])[0]
        return out, mic - out  # the echo estimate includes the DC the notch took out


def kalman_cancel(mic: np.ndarray, ref: np.ndarray, config: KalmanConfig | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Whole signals ``(time,)`` -> ``(linear_out, echo_estimate)``, float32, same length
    (zero-padded to a whole hop inside)."""
    f = KalmanEchoFilter(config)
    mic = np.asarray(mic, np.float64)
    ref = np.asarray(ref, np.float64)
    if mic.ndim != 1 or mic.shape != ref.shape:
        raise ValueError(f"mic {mic.shape} and ref {ref.shape} must be equal 1-D shapes")
    n = len(mic)
    pad = (-n) % f.cfg.hop
    out, echo = f.process(np.pad(mic, (0, pad)), np.pad(ref, (0, pad)))
    return out[:n].astype(np.float32), echo[:n].astype(np.float32)


def estimate_delay(mic: np.ndarray, ref: np.ndarray, max_delay: int) -> int:
    """Bulk delay (samples, 0..max_delay) of the echo in ``mic`` behind ``ref`` by GCC-PHAT
    over the whole signals (offline; for aligning a recording before filtering)."""
    mic = np.asarray(mic, np.float64)
    ref = np.asarray(ref, np.float64)
    n = 1 << int(np.ceil(np.log2(len(mic) + len(ref))))
    cross = np.fft.rfft(mic, n) * np.conj(np.fft.rfft(ref, n))
    cc = np.fft.irfft(cross / (np.abs(cross) + 1e-12), n)
    return int(np.argmax(cc[:max_delay + 1]))
