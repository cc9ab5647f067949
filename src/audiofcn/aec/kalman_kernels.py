"""The per-block elementwise work of :class:`~audiofcn.aec.linear.KalmanEchoFilter`, fused.

Per 10 ms block the Kalman filter runs two complex filter sums over its ``(partitions, bins)``
state (the adapting and the output filter) and one update of the state, the gain and the
error covariance. In numpy these are some 25 small array operations on ``26 x 161`` arrays,
each paying numpy's call overhead; :func:`filter_sums` and :func:`kalman_update` do them in
one numba loop each, and :func:`dc_notch` replaces a scipy ``lfilter`` call per hop (compiled
on first use, cached on disk when the package directory is writable). The FFTs stay in numpy.

Both have a numpy version with the same arithmetic in the same order (float64, no fast-math
reassociation); it runs when numba is missing or ``AUDIOFCN_NO_NUMBA=1`` is set
(:data:`AVAILABLE` is then False). The two agree to float64 rounding
(``tests/aec/test_linear.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audiofcn.nn.fused_kernels import NUMBA_WANTED

AVAILABLE = False


def filter_sums_numpy(w: np.ndarray, wf: np.ndarray, x: np.ndarray, s: np.ndarray,
                      sf: np.ndarray, two: bool) -> None:
    """``s = sum_p w[p] x[p]`` and, if ``two``, ``sf = sum_p wf[p] x[p]`` (complex
    ``(partitions, bins)`` -> ``(bins,)``, written in place)."""
    s[:] = (w * x).sum(0)
    if two:
        sf[:] = (wf * x).sum(0)


def kalman_update_numpy(w: np.ndarray, p: np.ndarray, x: np.ndarray, e: np.ndarray,
                        psi_s: np.ndarray, reg: float, a2: float) -> None:
    """One Kalman step in place: ``mu = P / (0.5 sum_q P_q |X_q|^2 + psi_s + reg sum_q P_q
    + 1e-12)``, ``W += mu conj(X) E``, ``P = a2 (1 - 0.5 mu |X|^2) P + (1 - a2) |W|^2``."""
    x2 = x.real * x.real + x.imag * x.imag
    denom = 0.5 * (p * x2).sum(0) + psi_s + reg * p.sum(0) + 1e-12
    mu = p / denom
    w += mu * np.conj(x) * e
    p[:] = a2 * (1 - 0.5 * mu * x2) * p + (1 - a2) * (w.real * w.real + w.imag * w.imag)


def dc_notch_numpy(x: np.ndarray, r: float, state: np.ndarray) -> np.ndarray:
    """``y[t] = x[t] - x[t-1] + r y[t-1]`` (scipy's ``lfilter``, direct form II transposed);
    ``state`` = [previous input, previous output], updated in place."""
    from scipy.signal import lfilter

    zi = np.array([r * state[1] - state[0]])
    y, _ = lfilter([1.0, -1.0], [1.0, -r], x, zi=zi)
    state[0], state[1] = x[-1], y[-1]
    return y


filter_sums: Any = filter_sums_numpy
kalman_update: Any = kalman_update_numpy
dc_notch: Any = dc_notch_numpy

if NUMBA_WANTED:
    try:
        from numba import njit

        @njit(cache=True, boundscheck=False)
        def _filter_sums(w: np.ndarray, wf: np.ndarray, x: np.ndarray, s: np.ndarray,
                         sf: np.ndarray, two: bool) -> None:  # pragma: no cover - compiled
            parts, bins = w.shape
            for j in range(bins):
                acc = w[0, j] * x[0, j]
                for q in range(1, parts):
                    acc += w[q, j] * x[q, j]
                s[j] = acc
            if two:
                for j in range(bins):
                    acc = wf[0, j] * x[0, j]
                    for q in range(1, parts):
                        acc += wf[q, j] * x[q, j]
                    sf[j] = acc

        @njit(cache=True, boundscheck=False)
        def _kalman_update(w: np.ndarray, p: np.ndarray, x: np.ndarray, e: np.ndarray,
                           psi_s: np.ndarray, reg: float, a2: float
                           ) -> None:  # pragma: no cover - compiled
            parts, bins = w.shape
            b2 = 1 - a2
            for j in range(bins):
                xr, xi = x[0, j].real, x[0, j].imag
                spx = p[0, j] * (xr * xr + xi * xi)
                sp = p[0, j]
                for q in range(1, parts):
                    xr, xi = x[q, j].real, x[q, j].imag
                    spx += p[q, j] * (xr * xr + xi * xi)
                    sp += p[q, j]
                denom = 0.5 * spx + psi_s[j] + reg * sp + 1e-12
                ej = e[j]
                for q in range(parts):
                    xr, xi = x[q, j].real, x[q, j].imag
                    mu = p[q, j] / denom
                    wq = w[q, j] + complex(mu * xr, -(mu * xi)) * ej
                    w[q, j] = wq
                    p[q, j] = a2 * (1 - 0.5 * mu * (xr * xr + xi * xi)) * p[q, j] + \
                        b2 * (wq.real * wq.real + wq.imag * wq.imag)

        @njit(cache=True, boundscheck=False)
        def _dc_notch(x: np.ndarray, r: float, state: np.ndarray
                      ) -> np.ndarray:  # pragma: no cover - compiled
            y = np.empty_like(x)
            z = r * state[1] - state[0]
            for t in range(len(x)):  # lfilter's order: y = z + x, z = -x - y * (-r)
                yt = z + x[t]
                y[t] = yt
                z = -x[t] - yt * (-r)
            state[0], state[1] = x[-1], y[-1]
            return y

        filter_sums, kalman_update = _filter_sums, _kalman_update
        dc_notch = _dc_notch
        AVAILABLE = True
    except ImportError:  # pragma: no cover - numba comes with librosa
        pass
