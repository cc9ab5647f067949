"""Musical transformations for self-supervised similarity training and evaluation queries.

Every function takes float waveforms ``(batch, time)`` (or ``(time,)``) and returns the same
shape, so a transformed view can be embedded next to the original. Randomness comes only from
an explicit ``torch.Generator``, so a seed reproduces a view exactly. Frequency-domain effects
(EQ, band limits, reverb, noise colour) are batched with one FFT; pitch shift and time stretch
run per item because each item gets its own rate.

:class:`MusicAugment` draws a random chain of them (pitch shift, time stretch, EQ/filtering,
gain, added noise, low-bitrate codec, room reverb, mixing with another track at a low level);
``strength`` scales every range, so evaluation can use stronger settings than training.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _as_batch(x: Tensor) -> tuple[Tensor, bool]:
    if x.dim() == 1:
        return x[None], True
    if x.dim() != 2:
        raise ValueError(f"expected (batch, time) or (time,) audio, got {tuple(x.shape)}")
    return x, False


def _fit_length(x: Tensor, n: int) -> Tensor:
    """Crop or zero-pad the last axis to ``n`` samples."""
    if x.shape[-1] >= n:
        return x[..., :n]
    return F.pad(x, (0, n - x.shape[-1]))


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def gain(x: Tensor, db: Tensor | float) -> Tensor:
    """Scale by ``db`` decibels (scalar or ``(batch,)``)."""
    xb, squeeze = _as_batch(x)
    g = 10.0 ** (torch.as_tensor(db, dtype=xb.dtype).reshape(-1, 1) / 20.0)
    y = xb * g
    return y[0] if squeeze else y


def _rms(x: Tensor) -> Tensor:
    return x.pow(2).mean(-1, keepdim=True).add(1e-12).sqrt()


def add_noise(x: Tensor, snr_db: Tensor | float, generator: torch.Generator,
              color: str = "white") -> Tensor:
    """Add white or pink (1/f power) Gaussian noise at ``snr_db`` (scalar or ``(batch,)``)."""
    xb, squeeze = _as_batch(x)
    noise = torch.randn(xb.shape, generator=generator, dtype=xb.dtype)
    if color == "pink":
        spec = torch.fft.rfft(noise)
        f = torch.arange(spec.shape[-1], dtype=xb.dtype).clamp_min(1.0)
        noise = torch.fft.irfft(spec / f.sqrt(), n=xb.shape[-1])
    elif color != "white":
        raise ValueError(f"unknown noise colour {color!r}")
    snr = torch.as_tensor(snr_db, dtype=xb.dtype).reshape(-1, 1)
    y = xb + noise / _rms(noise) * _rms(xb) * 10.0 ** (-snr / 20.0)
    return y[0] if squeeze else y


def filter_response(x: Tensor, response: Tensor) -> Tensor:
    """Apply a zero-phase magnitude response ``(batch or 1, n_fft_bins)`` sampled on
    ``linspace(0, nyquist, bins)``; it is interpolated to the signal's rFFT grid."""
    xb, squeeze = _as_batch(x)
    n = xb.shape[-1]
    spec = torch.fft.rfft(xb)
    resp = F.interpolate(response[:, None], size=spec.shape[-1], mode="linear",
                         align_corners=True)[:, 0]
    y = torch.fft.irfft(spec * resp, n=n)
    return y[0] if squeeze else y


def random_eq(x: Tensor, generator: torch.Generator, max_db: float = 12.0,
              n_points: int = 8) -> Tensor:
    """Random smooth EQ: a gain curve of ``n_points`` random dB values on a log-frequency
    grid, smoothly interpolated (a multi-band graphic equaliser)."""
    xb, squeeze = _as_batch(x)
    b = xb.shape[0]
    bins = 257
    pts = _uniform(generator, b * n_points, -max_db, max_db).reshape(b, 1, n_points)
    # Points are spaced in log frequency: interpolate on a log grid, then map to linear bins.
    log_curve = F.interpolate(pts, size=bins, mode="linear", align_corners=True)[:, 0]
    lin = torch.linspace(0, 1, bins)
    log_pos = (torch.log1p(lin * 1000.0) / math.log1p(1000.0) * (bins - 1)).round().long()
    curve_db = log_curve[:, log_pos]
    y = filter_response(xb, 10.0 ** (curve_db / 20.0))
    return y[0] if squeeze else y


def band_limit(x: Tensor, sample_rate: int, low_hz: Tensor | float = 0.0,
               high_hz: Tensor | float | None = None, slope_hz: float = 200.0) -> Tensor:
    """High-pass at ``low_hz`` and low-pass at ``high_hz`` (scalars or ``(batch,)``) with
    raised-cosine transitions ``slope_hz`` wide."""
    xb, squeeze = _as_batch(x)
    b, n = xb.shape
    nyq = sample_rate / 2
    f = torch.fft.rfftfreq(n, 1.0 / sample_rate, dtype=xb.dtype)[None]
    lo = torch.as_tensor(low_hz, dtype=xb.dtype).reshape(-1, 1).expand(b, 1)
    hi = torch.as_tensor(nyq if high_hz is None else high_hz, dtype=xb.dtype)
    hi = hi.reshape(-1, 1).expand(b, 1)
    up = ((f - lo) / slope_hz + 0.5).clamp(0, 1)
    down = ((hi - f) / slope_hz + 0.5).clamp(0, 1)
    resp = (0.5 - 0.5 * torch.cos(math.pi * up)) * (0.5 - 0.5 * torch.cos(math.pi * down))
    y = torch.fft.irfft(torch.fft.rfft(xb) * resp, n=n)
    return y[0] if squeeze else y


def synthetic_rir(sample_rate: int, rt60: float, generator: torch.Generator,
                  predelay: float = 0.005) -> Tensor:
    """A room impulse response: direct path, then exponentially decaying noise with the given
    RT60 (a diffuse late field), low-passed a little as air absorption would."""
    n = max(int(rt60 * sample_rate * 1.2), 16)
    t = torch.arange(n) / sample_rate
    tail = torch.randn(n, generator=generator) * torch.exp(-6.9078 * t / rt60)
    tail[: int(predelay * sample_rate)] = 0.0
    tail = torch.fft.irfft(torch.fft.rfft(tail) * torch.linspace(1.0, 0.3, n // 2 + 1), n=n)
    rir = tail / tail.norm().clamp_min(1e-8) * 0.7
    rir[0] = 1.0
    return rir


def reverb(x: Tensor, sample_rate: int, rt60: Tensor | float, generator: torch.Generator,
           wet: Tensor | float = 0.5) -> Tensor:
    """Convolve each item with its own synthetic room (``rt60`` seconds) and mix
    ``wet`` (0..1) of it with the dry signal; loudness is kept."""
    xb, squeeze = _as_batch(x)
    b, n = xb.shape
    rt = torch.as_tensor(rt60).reshape(-1).expand(b)
    w = torch.as_tensor(wet, dtype=xb.dtype).reshape(-1).expand(b)
    out = []
    for i in range(b):
        rir = synthetic_rir(sample_rate, float(rt[i]), generator)
        m = n + rir.shape[0] - 1
        nfft = 1 << (m - 1).bit_length()
        y = torch.fft.irfft(torch.fft.rfft(xb[i], nfft) * torch.fft.rfft(rir, nfft), nfft)[:n]
        y = (1 - w[i]) * xb[i] + w[i] * y * _rms(xb[i]) / _rms(y)
        out.append(y)
    y = torch.stack(out)
    return y[0] if squeeze else y


def time_stretch(x: Tensor, rate: float, n_fft: int = 1024, hop: int = 256,
                 keep_length: bool = True) -> Tensor:
    """Change tempo by ``rate`` (>1 faster) keeping pitch: phase vocoder on an STFT.

    With ``keep_length`` the result is cropped/zero-padded back to the input length."""
    import torchaudio.functional as taf

    xb, squeeze = _as_batch(x)
    n = xb.shape[-1]
    if abs(rate - 1.0) < 1e-6:
        return x
    window = torch.hann_window(n_fft, dtype=xb.dtype)
    spec = torch.stft(xb, n_fft, hop, window=window, return_complex=True)
    phase_advance = torch.linspace(0, math.pi * hop, spec.shape[-2], dtype=xb.dtype)[:, None]
    stretched = taf.phase_vocoder(spec, rate, phase_advance)
    y = torch.istft(stretched, n_fft, hop, window=window, length=int(round(n / rate)))
    if keep_length:
        y = _fit_length(y, n)
    return y[0] if squeeze else y


def _resample_ratio(x: Tensor, factor: float) -> Tensor:
    """Resample so that the signal plays ``factor`` times faster (length / factor)."""
    import torchaudio.functional as taf

    frac = np.round(factor * 100).astype(int)
    g = math.gcd(int(frac), 100)
    return taf.resample(x, int(frac) // g, 100 // g)


def pitch_shift(x: Tensor, semitones: float, n_fft: int = 1024, hop: int = 256) -> Tensor:
    """Shift pitch by ``semitones`` keeping tempo (time stretch by 1/f, then resample by f,
    as ``librosa.effects.pitch_shift``). Same shape as the input."""
    xb, squeeze = _as_batch(x)
    if abs(semitones) < 1e-6:
        return x
    n = xb.shape[-1]
    factor = 2.0 ** (semitones / 12.0)
    y = time_stretch(xb, 1.0 / factor, n_fft, hop, keep_length=False)
    y = _fit_length(_resample_ratio(y, factor), n)
    return y[0] if squeeze else y


def mix_with(x: Tensor, other: Tensor, snr_db: Tensor | float) -> Tensor:
    """Add ``other`` (same shape) under ``x`` at ``snr_db`` below it (another track playing
    softly in the background)."""
    xb, squeeze = _as_batch(x)
    ob, _ = _as_batch(other)
    snr = torch.as_tensor(snr_db, dtype=xb.dtype).reshape(-1, 1)
    y = xb + ob / _rms(ob) * _rms(xb) * 10.0 ** (-snr / 20.0)
    return y[0] if squeeze else y


_WARNED: set[str] = set()


def _warn_once(msg: str) -> None:
    if msg not in _WARNED:
        _WARNED.add(msg)
        warnings.warn(msg, stacklevel=3)


def opus_available() -> bool:
    return shutil.which("opusenc") is not None and shutil.which("opusdec") is not None


def opus_roundtrip(x: Tensor, sample_rate: int, kbps: float) -> Tensor:
    """Encode with ``opusenc --hard-cbr`` at ``kbps`` and decode with ``opusdec``, per item."""
    import soundfile as sf

    xb, squeeze = _as_batch(x)
    out = []
    with tempfile.TemporaryDirectory(prefix="audiofcn_opus_") as tmp:
        for i in range(xb.shape[0]):
            src, enc, dec = (Path(tmp) / f"{i}.{e}" for e in ("wav", "opus", "dec.wav"))
            peak = float(xb[i].abs().max().clamp_min(1e-8))
            scale = min(1.0, 0.99 / peak)
            sf.write(src, (xb[i] * scale).numpy(), sample_rate, subtype="PCM_16")
            subprocess.run(["opusenc", "--quiet", "--hard-cbr", "--bitrate", str(kbps),
                            str(src), str(enc)], check=True, capture_output=True)
            subprocess.run(["opusdec", "--quiet", "--rate", str(sample_rate), str(enc),
                            str(dec)], check=True, capture_output=True)
            y, _ = sf.read(dec, dtype="float32")
            y = torch.from_numpy(y.reshape(-1) if y.ndim == 1 else y.mean(1)) / scale
            out.append(_fit_length(y, xb.shape[-1]))
    y = torch.stack(out)
    return y[0] if squeeze else y


def sndfile_opus_available() -> bool:
    import soundfile as sf

    return "OPUS" in sf.available_subtypes("OGG")


def sndfile_opus_roundtrip(x: Tensor, sample_rate: int, kbps: float) -> Tensor:
    """Real Opus in process through libsndfile (>= 1.1; no subprocesses, so fast enough for a
    training loop). libsndfile sets the bitrate from a compression level, linear from
    256 kbps (0) to 6 kbps (1) per channel; ``sample_rate`` must be one Opus accepts
    (8/12/16/24/48 kHz). Output is aligned with the input (libsndfile trims the pre-skip)."""
    import io

    import soundfile as sf

    xb, squeeze = _as_batch(x)
    level = float(np.clip(1.0 - (kbps * 1000.0 - 6000.0) / 250000.0, 0.0, 1.0))
    out = []
    for i in range(xb.shape[0]):
        peak = float(xb[i].abs().max().clamp_min(1e-8))
        scale = min(1.0, 0.99 / peak)
        buf = io.BytesIO()
        with sf.SoundFile(buf, "w", sample_rate, 1, format="OGG", subtype="OPUS",
                          compression_level=level) as f:
            f.write((xb[i] * scale).numpy().astype(np.float32))
        buf.seek(0)
        y, _ = sf.read(buf, dtype="float32")
        y = torch.from_numpy(y.reshape(-1) if y.ndim == 1 else y.mean(1)) / scale
        out.append(_fit_length(y, xb.shape[-1]))
    y = torch.stack(out)
    return y[0] if squeeze else y


def simulated_codec(x: Tensor, sample_rate: int, kbps: float) -> Tensor:
    """A low-bitrate codec stand-in when Opus is missing: band-limit to the audio bandwidth a
    codec keeps at that bitrate, then quantise a mu-law companded signal coarsely (bits per
    sample shrink with the bitrate), adding the broadband quantisation noise of a codec."""
    xb, squeeze = _as_batch(x)
    cutoff = min(sample_rate / 2 - 100, 4000.0 + 500.0 * max(0.0, kbps - 6.0))
    y = band_limit(xb, sample_rate, 60.0, cutoff)
    peak = y.abs().amax(-1, keepdim=True).clamp_min(1e-8)
    mu = 255.0
    comp = torch.sign(y / peak) * torch.log1p(mu * (y / peak).abs()) / math.log1p(mu)
    levels = 2 ** int(np.clip(round(kbps / 2), 3, 8))
    q = torch.round(comp * levels) / levels
    y = torch.sign(q) * ((1 + mu) ** q.abs() - 1) / mu * peak
    return y[0] if squeeze else y


def codec(x: Tensor, sample_rate: int, kbps: float, backend: str = "auto") -> Tensor:
    """Low-bitrate codec round trip: ``backend`` ``"opus"`` (opusenc/opusdec subprocesses),
    ``"sndfile"`` (Opus through libsndfile, in process; the simulation where this libsndfile
    has no Opus), ``"simulate"`` or ``"auto"`` (``"opus"`` when ``opusenc``/``opusdec`` are
    installed, else the simulation)."""
    if backend == "opus" or (backend == "auto" and opus_available()):
        return opus_roundtrip(x, sample_rate, kbps)
    if backend == "sndfile":
        if sndfile_opus_available():
            return sndfile_opus_roundtrip(x, sample_rate, kbps)
        _warn_once("libsndfile has no Opus here: codec_backend 'sndfile' falls back to the "
                   "simulated codec")
        return simulated_codec(x, sample_rate, kbps)
    if backend not in ("auto", "simulate"):
        raise ValueError(f"unknown codec backend {backend!r}")
    return simulated_codec(x, sample_rate, kbps)


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each transformation (ranges are scaled by ``strength``)."""

    sample_rate: int = 16000
    strength: float = 1.0
    p_pitch: float = 0.3
    max_semitones: float = 1.0
    p_stretch: float = 0.3
    max_stretch: float = 0.08  # rate in [1 - s, 1 + s]
    p_eq: float = 0.5
    eq_db: float = 8.0
    p_filter: float = 0.3  # band limiting (high-pass and/or low-pass)
    p_reverb: float = 0.3
    max_rt60: float = 0.6
    p_mix: float = 0.3
    mix_snr_db: tuple[float, float] = (12.0, 25.0)  # the other track this far below
    p_noise: float = 0.4
    noise_snr_db: tuple[float, float] = (15.0, 40.0)
    p_codec: float = 0.2
    codec_kbps: tuple[float, float] = (8.0, 24.0)
    codec_backend: str = "simulate"  # per-item subprocesses are too slow in a training loop
    gain_db: float = 10.0


class MusicAugment:
    """Random chain of musical transformations on ``(batch, time)`` audio.

    ``others`` (same shape) are tracks to mix in softly; by default the batch rolled by one,
    which is another track when each batch row comes from a different track."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __call__(self, x: Tensor, generator: torch.Generator,
                 others: Tensor | None = None) -> Tensor:
        c, s = self.config, self.config.strength
        xb, squeeze = _as_batch(x)
        b = xb.shape[0]
        sr = c.sample_rate

        def pick(p: float) -> Tensor:
            return torch.rand(b, generator=generator) < min(1.0, p)

        y = xb.clone()
        for i in torch.nonzero(pick(c.p_pitch)).flatten().tolist():
            st = float(_uniform(generator, 1, -c.max_semitones * s, c.max_semitones * s))
            y[i] = pitch_shift(y[i], st)
        for i in torch.nonzero(pick(c.p_stretch)).flatten().tolist():
            r = float(_uniform(generator, 1, 1 - c.max_stretch * s, 1 + c.max_stretch * s))
            y[i] = time_stretch(y[i], r)
        m = pick(c.p_eq)
        if m.any():
            y[m] = random_eq(y[m], generator, c.eq_db * s)
        m = pick(c.p_filter)
        if m.any():
            k = int(m.sum())
            low = _uniform(generator, k, 0, 300 * s)
            high = _uniform(generator, k, max(1500.0, sr / 2 - 5000 * s), sr / 2)
            y[m] = band_limit(y[m], sr, low, high)
        m = pick(c.p_reverb)
        if m.any():
            k = int(m.sum())
            y[m] = reverb(y[m], sr, _uniform(generator, k, 0.15, 0.15 + c.max_rt60 * s),
                          generator, _uniform(generator, k, 0.2, min(1.0, 0.2 + 0.5 * s)))
        m = pick(c.p_mix)
        if m.any() and (b > 1 or others is not None):
            other = others if others is not None else torch.roll(xb, 1, dims=0)
            lo, hi = c.mix_snr_db
            snr = _uniform(generator, int(m.sum()), hi - (hi - lo) * s, hi)
            y[m] = mix_with(y[m], other[m], snr)
        m = pick(c.p_noise)
        if m.any():
            lo, hi = c.noise_snr_db
            snr = _uniform(generator, int(m.sum()), hi - (hi - lo) * s, hi)
            color = "pink" if bool(torch.rand(1, generator=generator) < 0.5) else "white"
            y[m] = add_noise(y[m], snr, generator, color)
        for i in torch.nonzero(pick(c.p_codec)).flatten().tolist():
            lo, hi = c.codec_kbps
            kbps = float(_uniform(generator, 1, hi - (hi - lo) * s, hi))
            y[i] = codec(y[i], sr, kbps, c.codec_backend)
        y = gain(y, _uniform(generator, b, -c.gain_db, c.gain_db))
        # Keep the float signal in a sane range (as a real file would be): peak-limit to 1.
        y = y / y.abs().amax(-1, keepdim=True).clamp_min(1.0)
        return y[0] if squeeze else y
