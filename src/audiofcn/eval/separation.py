"""Separation metrics: BSS-Eval (``mir_eval``), NSDR, duration-weighted GNSDR/GSIR/GSAR, SI-SDR,
and the two reference systems every table carries: the ideal-binary-mask oracle (ceiling) and the
mixture itself (floor).

Protocol (DESIGN.md): ``mir_eval.separation.bss_eval_sources`` per clip on
``[voice, accompaniment]`` (no permutation search: the order is known);
``NSDR = SDR(voice estimate) − SDR(mixture as voice estimate)``; GNSDR/GSIR/GSAR are the means of
NSDR/SIR/SAR over clips weighted by clip duration; SI-SDR (Le Roux et al. 2019) of the voice.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from audiofcn.frontend import ISTFT, STFT, STFTConfig


@dataclass
class ClipScores:
    """BSS-Eval scores of one clip (dB). ``voice_*``/``acc_*``: SDR, SIR, SAR of each source;
    ``voice_nsdr`` needs the mixture's voice SDR; ``voice_si_sdr`` is scale-invariant SDR."""

    clip: str
    duration: float
    voice_sdr: float
    voice_sir: float
    voice_sar: float
    acc_sdr: float
    acc_sir: float
    acc_sar: float
    voice_si_sdr: float
    voice_nsdr: float | None = None

    def to_dict(self) -> dict[str, float | str | None]:
        return asdict(self)


def _np(x: np.ndarray | torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return a.astype(np.float64).reshape(-1)


def si_sdr(reference: np.ndarray | torch.Tensor, estimate: np.ndarray | torch.Tensor,
           eps: float = 1e-10) -> float:
    """Scale-invariant SDR in dB of a 1-D ``estimate`` against ``reference`` (zero-mean)."""
    r, e = _np(reference), _np(estimate)
    n = min(len(r), len(e))
    r, e = r[:n] - r[:n].mean(), e[:n] - e[:n].mean()
    target = (e @ r) / (r @ r + eps) * r
    noise = e - target
    return float(10 * np.log10((target @ target + eps) / (noise @ noise + eps)))


def bss_eval(voice: np.ndarray | torch.Tensor, accompaniment: np.ndarray | torch.Tensor,
             est_voice: np.ndarray | torch.Tensor, est_accompaniment: np.ndarray | torch.Tensor
             ) -> dict[str, float]:
    """``mir_eval`` BSS-Eval v3 on ``[voice, accompaniment]``; 1-D signals of one clip.

    Raises:
        ValueError: a reference is silent (BSS-Eval is undefined) or lengths differ.
    """
    import mir_eval

    refs = np.stack([_np(voice), _np(accompaniment)])
    ests = np.stack([_np(est_voice), _np(est_accompaniment)])
    if refs.shape != ests.shape:
        raise ValueError(f"reference shape {refs.shape} != estimate shape {ests.shape}")
    if not (np.abs(refs).max(axis=1) > 0).all():
        raise ValueError("a reference source is silent; BSS-Eval is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated name, same algorithm
        sdr, sir, sar, _ = mir_eval.separation.bss_eval_sources(refs, ests,
                                                                 compute_permutation=False)
    return {"voice_sdr": float(sdr[0]), "voice_sir": float(sir[0]), "voice_sar": float(sar[0]),
            "acc_sdr": float(sdr[1]), "acc_sir": float(sir[1]), "acc_sar": float(sar[1])}


def score_clip(clip: str, sample_rate: int, voice: np.ndarray | torch.Tensor,
               accompaniment: np.ndarray | torch.Tensor, est_voice: np.ndarray | torch.Tensor,
               est_accompaniment: np.ndarray | torch.Tensor,
               mixture_voice_sdr: float | None = None) -> ClipScores:
    """All scores of one clip; pass ``mixture_voice_sdr`` (the mixture system's ``voice_sdr``)
    to fill NSDR."""
    s = bss_eval(voice, accompaniment, est_voice, est_accompaniment)
    nsdr = None if mixture_voice_sdr is None else s["voice_sdr"] - mixture_voice_sdr
    return ClipScores(clip=clip, duration=len(_np(voice)) / sample_rate, **s,
                      voice_si_sdr=si_sdr(voice, est_voice), voice_nsdr=nsdr)


def global_scores(rows: Sequence[ClipScores | dict]) -> dict[str, float]:
    """Duration-weighted means: GNSDR, GSIR, GSAR (voice), plus mean SDR/SI-SDR and counts.

    ``GNSDR = Σ_k w_k NSDR_k / Σ_k w_k`` with ``w_k`` the clip duration (Hsu & Jang's MIR-1K
    protocol); GSIR/GSAR likewise over the voice SIR/SAR.
    """
    rs = [r.to_dict() if isinstance(r, ClipScores) else r for r in rows]
    if not rs:
        raise ValueError("no clips to average")
    w = np.array([r["duration"] for r in rs], dtype=np.float64)

    def wmean(key: str) -> float | None:
        vals = [r[key] for r in rs]
        if any(v is None for v in vals):
            return None
        return float(np.sum(w * np.array(vals, dtype=np.float64)) / w.sum())

    out = {"clips": len(rs), "seconds": float(w.sum()), "GNSDR": wmean("voice_nsdr"),
           "GSIR": wmean("voice_sir"), "GSAR": wmean("voice_sar"),
           "voice_SDR": wmean("voice_sdr"), "voice_SI_SDR": wmean("voice_si_sdr"),
           "acc_SDR": wmean("acc_sdr"),
           "median_voice_SDR": float(np.median([r["voice_sdr"] for r in rs]))}
    return out


@torch.no_grad()
def ibm_oracle(voice: torch.Tensor, accompaniment: torch.Tensor, stft_config: STFTConfig
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The ceiling of a binary-mask separator: the ideal binary mask ``|V| > |A|`` applied to the
    mixture's STFT (mixture phase). 1-D ``(time,)`` inputs -> ``(voice, accompaniment)``."""
    stft, istft = STFT(stft_config), ISTFT(stft_config)
    v, a = stft(voice.float()), stft(accompaniment.float())
    mask = (v.abs() > a.abs()).to(v.real.dtype)
    mix = v + a
    n = voice.shape[-1]
    est_v = istft(mix * mask, length=n)
    return est_v, (voice + accompaniment) - est_v


def mixture_floor(voice: torch.Tensor, accompaniment: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """The floor: the mixture itself as the estimate of both sources."""
    mix = voice + accompaniment
    return mix, mix


__all__ = ["ClipScores", "bss_eval", "global_scores", "ibm_oracle", "mixture_floor", "score_clip",
           "si_sdr"]
