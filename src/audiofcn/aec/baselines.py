"""Classical echo cancellers to compare the network against, in the same run.

* :func:`pbfdaf`: our own partitioned-block frequency-domain adaptive filter (overlap-save,
  constrained gradient, power-normalised step, Geigel double-talk detector). Pure numpy, so a
  baseline always runs.
* :class:`SpeexEchoCanceller`: the speexdsp echo canceller (MDF) through ``ctypes`` on the
  system library, optionally followed by the speexdsp preprocessor (residual echo suppression
  and noise suppression), which makes it a joint AEC + NS peer. Debian/Ubuntu:
  ``apt-get install libspeexdsp1``; :func:`speexdsp_available` says whether it was found.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

# speex_echo.h / speex_preprocess.h request codes
_SPEEX_ECHO_SET_SAMPLING_RATE = 24
_SPEEX_PREPROCESS_SET_DENOISE = 0
_SPEEX_PREPROCESS_SET_ECHO_STATE = 24


def pbfdaf(mic: np.ndarray, ref: np.ndarray, *, block: int = 256, partitions: int = 16,
           mu: float = 0.5, smoothing: float = 0.9, min_step: float = 1.0,
           reg: float = 0.05) -> np.ndarray:
    """Linear echo cancellation of ``mic`` given the loudspeaker ``ref`` (both ``(time,)``).

    The filter spans ``block * partitions`` taps (4096 = 256 ms at 16 kHz by default). Each
    block of ``block`` samples: filter the reference in the frequency domain (one FFT of
    ``2*block`` per block, the partitions reuse past input spectra), subtract the echo
    estimate, and update every partition with the normalised error gradient, constrained to
    a linear (not circular) correlation. ``min_step < 1`` enables a soft double-talk detector:
    the step is scaled by the ratio of echo-estimate to error power (clipped to
    ``[min_step, 1]``); it slows initial convergence a lot, so it is off by default. A
    divergence guard outputs the microphone for any block where the error would be louder,
    and restarts the filter when the smoothed error exceeds the microphone by 3 dB.
    Returns the error signal (the echo-cancelled microphone), ``(time,)``.
    """
    mic = np.asarray(mic, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if mic.shape != ref.shape or mic.ndim != 1:
        raise ValueError(f"mic {mic.shape} and ref {ref.shape} must be equal 1-D shapes")
    n, b = len(mic), block
    nb = -(-n // b)
    d = np.pad(mic, (0, nb * b - n))
    x = np.pad(ref, (b, nb * b - n))  # one block of history before the start
    nbins = b + 1
    W = np.zeros((partitions, nbins), dtype=np.complex128)
    X = np.zeros((partitions, nbins), dtype=np.complex128)
    power = np.full(nbins, 1e-6)
    out = np.zeros(nb * b)
    p_y, p_e, p_d = 0.0, 1e-10, 1e-10
    level = 0.0
    for k in range(nb):
        X = np.roll(X, 1, axis=0)
        X[0] = np.fft.rfft(x[k * b:k * b + 2 * b])  # [previous block, current block]
        y = np.fft.irfft((W * X).sum(axis=0), n=2 * b)[b:]
        dk = d[k * b:(k + 1) * b]
        e = dk - y
        # Divergence guard (as practical cancellers do): never output more than the mic, and
        # start over when the error has been louder than the microphone for a while.
        pd = float(np.mean(dk ** 2))
        out[k * b:(k + 1) * b] = e if float(np.mean(e ** 2)) <= pd else dk
        p_d = smoothing * p_d + (1 - smoothing) * pd
        inst = (np.abs(X) ** 2).sum(axis=0) / partitions
        # smoothed, but never below the current power: a lagging estimate at a speech onset
        # would multiply the effective step size and make the filter diverge
        power = np.maximum(smoothing * power + (1 - smoothing) * inst, inst)
        p_y = smoothing * p_y + (1 - smoothing) * float(np.mean(y ** 2))
        p_e = smoothing * p_e + (1 - smoothing) * float(np.mean(e ** 2))
        step = mu * min(1.0, max(min_step, p_y / (p_e + 1e-12)))
        if p_e > 2.0 * p_d + 1e-12:
            W[:] = 0.0
            p_y, p_e = 0.0, p_d
            continue
        E = np.fft.rfft(np.concatenate([np.zeros(b), e]))
        # Regularise quiet bins (speech pauses, band limits) relative to the long-term level,
        # otherwise near-end noise divided by a near-zero far-end power blows the filter up.
        level = 0.999 * level + 0.001 * float(power.mean()) if k else float(power.mean())
        G = step * np.conj(X) * E / (partitions * (power + reg * level) + 1e-10)
        g = np.fft.irfft(G, n=2 * b, axis=-1)
        g[:, b:] = 0.0  # gradient constraint: keep the filter causal and block-long
        W += np.fft.rfft(g, axis=-1)
    return out[:n].astype(np.float32)


@lru_cache(maxsize=1)
def _speex_lib() -> ctypes.CDLL | None:
    names = [ctypes.util.find_library("speexdsp"), "libspeexdsp.so.1", "libspeexdsp.so",
             "libspeexdsp.dylib", "libspeexdsp-1.dll"]
    for name in names:
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.speex_echo_state_init.restype = ctypes.c_void_p
        lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
        lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        short_p = ctypes.POINTER(ctypes.c_int16)
        lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, short_p, short_p, short_p]
        lib.speex_preprocess_state_init.restype = ctypes.c_void_p
        lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
        lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, short_p]
        return lib
    return None


def speexdsp_available() -> bool:
    return _speex_lib() is not None


SPEEXDSP_MISSING = ("speexdsp not found: install the system library (Debian/Ubuntu: "
                    "apt-get install libspeexdsp1; macOS: brew install speexdsp)")


class SpeexEchoCanceller:
    """speexdsp MDF echo canceller (+ optional preprocessor: residual echo and noise
    suppression), frame by frame on 16-bit samples.

    ``frame_size`` samples per call (10 ms at 16 kHz by default) and a ``filter_length``-tap
    echo tail (250 ms). :meth:`process` takes float frames in ``[-1, 1]``; :meth:`run` a whole
    signal.
    """

    def __init__(self, sample_rate: int = 16000, frame_size: int = 160,
                 filter_length: int = 4000, preprocess: bool = True) -> None:
        lib = _speex_lib()
        if lib is None:
            raise RuntimeError(SPEEXDSP_MISSING)
        self._lib, self.frame_size = lib, frame_size
        self._echo = lib.speex_echo_state_init(frame_size, filter_length)
        rate = ctypes.c_int(sample_rate)
        lib.speex_echo_ctl(self._echo, _SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = None
        if preprocess:
            self._pre = lib.speex_preprocess_state_init(frame_size, sample_rate)
            on = ctypes.c_int(1)
            lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_DENOISE, ctypes.byref(on))
            lib.speex_preprocess_ctl(self._pre, _SPEEX_PREPROCESS_SET_ECHO_STATE,
                                     ctypes.c_void_p(self._echo))

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        if getattr(self, "_pre", None):
            lib.speex_preprocess_state_destroy(self._pre)
            self._pre = None
        if getattr(self, "_echo", None):
            lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def process(self, mic_frame: np.ndarray, ref_frame: np.ndarray) -> np.ndarray:
        n = self.frame_size
        if len(mic_frame) != n or len(ref_frame) != n:
            raise ValueError(f"speexdsp frames must be {n} samples")
        to16 = lambda a: np.clip(np.round(np.asarray(a) * 32768.0), -32768,  # noqa: E731
                                 32767).astype(np.int16)
        rec, play = to16(mic_frame), to16(ref_frame)
        out = np.zeros(n, dtype=np.int16)
        p = ctypes.POINTER(ctypes.c_int16)
        self._lib.speex_echo_cancellation(self._echo, rec.ctypes.data_as(p),
                                          play.ctypes.data_as(p), out.ctypes.data_as(p))
        if self._pre is not None:
            self._lib.speex_preprocess_run(self._pre, out.ctypes.data_as(p))
        return out.astype(np.float32) / 32768.0

    def run(self, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Whole signals ``(time,)`` -> ``(time,)``, time-aligned with the input: the
        preprocessor delays its output by one frame, which is removed here so that scores
        against the clean near-end are not penalised for it (its latency is still real)."""
        n, f = len(mic), self.frame_size
        delay = f if self._pre is not None else 0
        pad = (-(n + delay)) % f + delay
        m, r = np.pad(mic, (0, pad)), np.pad(ref, (0, pad))
        out = [self.process(m[i:i + f], r[i:i + f]) for i in range(0, len(m), f)]
        return np.concatenate(out)[delay:delay + n]


def speexdsp_cancel(mic: np.ndarray, ref: np.ndarray, sample_rate: int = 16000,
                    preprocess: bool = True, filter_length: int = 4000) -> np.ndarray:
    """Convenience: a fresh :class:`SpeexEchoCanceller` over whole signals."""
    return SpeexEchoCanceller(sample_rate, sample_rate // 100, filter_length,
                              preprocess).run(mic, ref)
