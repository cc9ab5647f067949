"""Full-track separation in bounded memory: :func:`separate`.

The track is cut into overlapping chunks of ``chunk_seconds``; each chunk is transformed with the
shared STFT, the model predicts a soft vocal mask (whole chunk in one pass for the FCN, sliding
patches for the paper CNN), the mask is optionally thresholded (the paper's binary decision) or
refined by a Wiener filter, applied to the mixture's complex spectrum (so the mixture phase is
kept) and inverted; the chunks are cross-faded back together. Memory is bounded by the chunk, not
by the track; only the output waveforms grow with it.

The accompaniment is ``mixture − vocals``. With complementary masks and the same STFT this is
exactly the masked-accompaniment estimate, and it stays exact when the input rate differs from
the model's: vocals are estimated at the model rate and resampled back, and whatever lies above
the model's Nyquist frequency stays in the accompaniment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from audiofcn.frontend import ISTFT, STFT
from audiofcn.io.audio import resample
from audiofcn.models.base import PretrainedModel, read_checkpoint


@dataclass
class SeparationResult:
    """``vocals`` and ``accompaniment`` are float32 ``(channels, time)`` at ``sample_rate``, the
    input's rate and channel count; ``vocals + accompaniment == mixture``."""

    vocals: torch.Tensor
    accompaniment: torch.Tensor
    sample_rate: int


# Separators shipped in ``audiofcn/pretrained/`` (cards in its README.md), by name.
# No shipped separator is trained on MIR-1K: its terms are research use (see the README there).
SHIPPED_SEPARATORS = ("separator_fcn_ccby", "separator_fcn_synth")
DEFAULT_SEPARATOR = "separator_fcn_ccby"
DEMO_SEPARATOR = "separator_fcn_synth"  # trained on the package's rendered songs, as the demo's


def resolve_separator(source: str | os.PathLike[str]) -> Path:
    """A shipped separator's name (``separator_fcn_ccby``, ``separator_fcn_synth``) -> its file in
    the package; anything else is taken as a path (an existing file of that name wins)."""
    if str(source) in SHIPPED_SEPARATORS and not Path(source).exists():
        return Path(str(resources.files("audiofcn") / "pretrained" / f"{source}.safetensors"))
    return Path(source)


def load_separator(source: str | os.PathLike[str] | dict[str, Any]) -> PretrainedModel:
    """Rebuild any separator (paper CNN, FCN, or the Open-Unmix peer) from a checkpoint path,
    a shipped separator's name (:data:`SHIPPED_SEPARATORS`) or a checkpoint dict."""
    from audiofcn.models import load_model

    blob = source if isinstance(source, dict) else read_checkpoint(resolve_separator(source))
    if blob["model"] == "separator_openunmix_peer":
        from audiofcn.separation.peers import OpenUnmixPeer

        return OpenUnmixPeer.from_pretrained(blob)
    model = load_model(blob)
    if not hasattr(model, "predict_mask"):
        name = "<dict>" if isinstance(source, dict) else str(source)
        from audiofcn.models.base import CheckpointError

        raise CheckpointError(f"{name}: a {blob['model']!r} model is not a separator")
    return model


def wiener_refine(spec: torch.Tensor, mask: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """One Wiener step from a soft mask; returns the refined vocal mask/filter.

    Source power spectra ``v_j = mean_c |m_j X_c|²`` and, for multichannel input, each source's
    spatial covariance ``R_j(f)`` are estimated from the masked mixture; the vocal estimate is
    ``v_v R_v (v_v R_v + v_a R_a)^-1 X`` (Duong et al. / Open-Unmix's ``norbert`` without EM
    iterations). For one channel this is the power-ratio mask ``v_v / (v_v + v_a)``.

    Shapes: ``spec`` complex ``(channels, freq, frames)``, ``mask`` real, same shape. Returns a
    complex ``(channels, freq, frames)`` vocal spectrum.
    """
    c = spec.shape[0]
    est = [mask * spec, (1.0 - mask) * spec]
    powers = [e.abs().square().mean(0) for e in est]  # (F, T) each
    if c == 1:
        return spec * powers[0] / (powers[0] + powers[1] + eps)
    xt = spec.permute(1, 2, 0)  # (F, T, C)
    covs = []
    for e, v in zip(est, powers, strict=True):
        et = e.permute(1, 2, 0)
        r = torch.einsum("ftc,ftd->fcd", et, et.conj()) / (v.sum(-1)[:, None, None] + eps)
        covs.append(v[..., None, None] * r[:, None])  # (F, T, C, C)
    eye = torch.eye(c, dtype=spec.dtype) * eps
    mix_cov = covs[0] + covs[1] + eye
    gain = covs[0] @ torch.linalg.inv(mix_cov)  # (F, T, C, C)
    return torch.einsum("ftcd,ftd->ftc", gain, xt).permute(2, 0, 1)


def _fade_weights(n: int, fade: int, first: bool, last: bool) -> torch.Tensor:
    w = torch.ones(n)
    fade = min(fade, n // 2)
    if fade > 0:
        ramp = torch.linspace(0.0, 1.0, fade + 2)[1:-1]
        if not first:
            w[:fade] = ramp
        if not last:
            w[n - fade:] = ramp.flip(0)
    return w


def chunk_sizes(model: Any, chunk_seconds: float, overlap_seconds: float) -> tuple[int, int]:
    """``(chunk, overlap)`` in samples at the model rate, whole STFT hops."""
    cfg = model.config
    sr, hop = cfg.sample_rate, cfg.stft.hop_length
    chunk = max(int(chunk_seconds * sr) // hop * hop, 4 * cfg.stft.n_fft)
    return chunk, min(int(overlap_seconds * sr) // hop * hop, chunk // 2)


def vocal_chunk(piece: torch.Tensor, model: Any, stft: STFT, istft: ISTFT, *,
                threshold: float | None, wiener: bool, patch_hop: int) -> torch.Tensor:
    """Vocals of one chunk ``(channels, n)`` at the model rate -> ``(channels, n)``."""
    spec = stft(piece, check=False)  # (C, F, T); the caller checked the input
    mask = model.predict_mask(spec.abs(), patch_hop=patch_hop)
    if threshold is not None:
        mask = (mask > threshold).to(mask.dtype)
    vocal_spec = wiener_refine(spec, mask) if wiener else spec * mask
    return istft(vocal_spec, length=piece.shape[-1])


@torch.inference_mode()
def separate_vocals_at_model_rate(audio: torch.Tensor, model: Any, *,
                                  threshold: float | None = None, wiener: bool = False,
                                  chunk_seconds: float = 20.0, overlap_seconds: float = 1.0,
                                  patch_hop: int = 1) -> torch.Tensor:
    """Vocals of ``audio`` ``(channels, time)`` sampled at ``model.config.sample_rate``.

    Channels are processed as a batch (the models are mono); chunks overlap by
    ``overlap_seconds`` and are cross-faded linearly. Returns ``(channels, time)``.
    """
    cfg = model.config
    stft, istft = STFT(cfg.stft), ISTFT(cfg.stft)
    total = audio.shape[-1]
    chunk, overlap = chunk_sizes(model, chunk_seconds, overlap_seconds)
    step = chunk - overlap
    out = torch.zeros_like(audio)
    norm = torch.zeros(total)
    start = 0
    while True:
        end = min(start + chunk, total)
        est = vocal_chunk(audio[:, start:end], model, stft, istft, threshold=threshold,
                          wiener=wiener, patch_hop=patch_hop)
        w = _fade_weights(end - start, overlap, start == 0, end == total)
        out[:, start:end] += est * w
        norm[start:end] += w
        if end == total:
            break
        start += step
    return out / norm.clamp_min(1e-8)


def separate(audio: torch.Tensor, sample_rate: int, model: Any, *,
             threshold: float | None = None, wiener: bool = False, chunk_seconds: float = 20.0,
             overlap_seconds: float = 1.0, patch_hop: int = 1) -> SeparationResult:
    """Split a mixture into vocals and accompaniment.

    Args:
        audio: ``(time,)`` or ``(channels, time)`` float waveform at ``sample_rate``; stereo is
            separated per channel and returned as stereo.
        sample_rate: the input's rate; resampled to the model's and back.
        model: a separator (:class:`~audiofcn.models.separator.FCNSeparator`,
            :class:`~audiofcn.models.separator.PatchSeparator`, the Open-Unmix peer), or a path
            to its checkpoint.
        threshold: binarise the soft vocal mask at this value (the paper: 0.35 on iKala,
            0.15 on DSD100); ``None`` keeps the soft mask.
        wiener: refine the mask with one Wiener step (off by default, as in the paper).
        chunk_seconds, overlap_seconds: chunking; memory is bounded by the chunk length.
        patch_hop: paper CNN only: 1 = one patch per frame (the paper), ``context_frames`` =
            disjoint patches (faster).

    Returns:
        :class:`SeparationResult` at the input's rate and channel count.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_separator(model)
    model.eval()
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2 or audio.shape[-1] == 0:
        raise ValueError(f"expected audio of shape (channels, time), got {tuple(audio.shape)}")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    audio = audio.float()
    model_sr = model.config.sample_rate
    x = resample(audio, sample_rate, model_sr)
    vocals = separate_vocals_at_model_rate(x, model, threshold=threshold, wiener=wiener,
                                           chunk_seconds=chunk_seconds,
                                           overlap_seconds=overlap_seconds, patch_hop=patch_hop)
    if model_sr != sample_rate:
        vocals = resample(vocals, model_sr, sample_rate)
        n = audio.shape[-1]
        vocals = torch.nn.functional.pad(vocals[..., :n], (0, max(0, n - vocals.shape[-1])))
    return SeparationResult(vocals=vocals, accompaniment=audio - vocals,
                            sample_rate=sample_rate)


__all__ = ["SeparationResult", "load_separator", "separate", "separate_vocals_at_model_rate",
           "wiener_refine"]
