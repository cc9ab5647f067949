"""Training task of the echo canceller (:class:`audiofcn.models.echo.EchoCanceller`) for
:class:`audiofcn.train.Trainer`: the compressed spectral loss, the talker SI-SDR term and the task
that combines them. Moved here from :mod:`audiofcn.models.echo` (the task belongs to the
capability package, the model to the models layer)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from audiofcn.aec.hybrid import hybrid_spectra


def compressed_spectral_loss(est: torch.Tensor, ref: torch.Tensor, c: float = 0.3,
                             alpha: float = 0.3, asymmetric: float = 0.0) -> torch.Tensor:
    """Power-law compressed spectral MSE: ``(1-alpha)`` magnitude term + ``alpha`` complex term.

    Compression (``|X|^c`` with the phase kept) balances loud and quiet bins, so residual echo
    in quiet near-end pauses costs as much as distortion of loud speech. ``asymmetric`` adds
    that weight times the squared magnitude *deficit* (estimate below target): suppressed
    near-end speech then costs more than the same amount of residual, which counters the
    over-suppression a mask network learns in double talk. Complex ``(batch, F, T)`` in,
    scalar out.
    """
    em, rm = est.abs().clamp_min(1e-8), ref.abs().clamp_min(1e-8)
    ec, rc = em.pow(c), rm.pow(c)
    mag = (ec - rc).square().mean()
    cplx = (est * (ec / em) - ref * (rc / rm)).abs().square().mean()
    loss = (1 - alpha) * mag + alpha * cplx
    if asymmetric:
        loss = loss + asymmetric * torch.relu(rc - ec).square().mean()
    return loss


class EchoCancellerTask:
    """Training task for :class:`audiofcn.train.Trainer`.

    Batches are dicts of ``(batch, time)`` waveforms: ``mic``, ``ref``, ``near`` (clean near-end
    at the microphone) and ``noise``. Dual mask: loss on the final estimate against ``near``
    plus ``stage_weight`` times the loss of the echo-stage estimate against ``near + noise``.
    Echo-only: the echo-stage loss alone (AEC without NS). ``asymmetric``: see
    :func:`compressed_spectral_loss`. ``sisdr_weight`` adds that weight times the negative
    SI-SDR (dB) of the final waveform against ``near``, averaged over the examples that have
    a near-end talker: a time-domain term on what is listened to, which charges suppressed
    near-end speech and residual echo in proportion to the talker's own level (the spectral
    loss weighs every bin the same, so it rewards over-suppression in double talk).
    """

    def __init__(self, stage_weight: float = 0.5, asymmetric: float = 0.0,
                 sisdr_weight: float = 0.0) -> None:
        self.stage_weight = stage_weight
        self.asymmetric = asymmetric
        self.sisdr_weight = sisdr_weight

    def _losses(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        core = model.module if hasattr(model, "module") else model  # DDP wrapper
        mic, ref = core.stft(batch["mic"]), core.stft(batch["ref"])
        out = model(mic, ref, **hybrid_spectra(core, batch))  # hybrid: + linear stage
        near, noisy = core.stft(batch["near"]), core.stft(batch["near"] + batch["noise"])
        stage = compressed_spectral_loss(out["near_noisy"], noisy, asymmetric=self.asymmetric)
        if "noise_mask" in out:
            final = compressed_spectral_loss(out["near"], near, asymmetric=self.asymmetric)
            loss = final + self.stage_weight * stage
        else:
            final, loss = stage, stage
        d = {"loss": loss, "final": final, "stage": stage}
        if self.sisdr_weight:
            est = core.istft(out["near"], length=batch["near"].shape[-1])
            d["sisdr"] = talker_si_sdr(est, batch["near"])
            d["loss"] = loss - self.sisdr_weight * d["sisdr"]
        return d

    def training_step(self, model: nn.Module,
                      batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        d = self._losses(model, batch)
        return d["loss"], {k: float(v.detach()) for k, v in d.items() if k != "loss"}

    def validation_step(self, model: nn.Module,
                        batch: dict[str, torch.Tensor]) -> dict[str, float]:
        return {k: float(v) for k, v in self._losses(model, batch).items()}


def talker_si_sdr(est: torch.Tensor, ref: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean SI-SDR (dB) of ``(batch, time)`` estimates over the examples whose reference
    is not silent (far-end single talk has no near-end talker, so no SI-SDR); 0 if none."""
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    energy = ref.square().sum(-1)
    talker = energy > 1e-6 * ref.shape[-1] * 1e-6  # any signal above about -120 dBFS
    if not bool(talker.any()):
        return est.sum() * 0.0
    ref, est, energy = ref[talker], est[talker], energy[talker]
    target = (est * ref).sum(-1, keepdim=True) / (energy[:, None] + eps) * ref
    err = (est - target).square().sum(-1)
    return (10.0 * torch.log10((target.square().sum(-1) + eps) / (err + eps))).mean()
