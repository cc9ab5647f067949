"""Triplet loss with in-batch mining for metric learning (embedding nets).

``embeddings`` are ``(batch, dim)`` (L2-normalised or not) and ``labels`` ``(batch,)`` integers:
items with equal labels are positives of each other (two views of one segment), all others are
negatives (other tracks). Distances are Euclidean; for unit vectors ``d² = 2 − 2·cos``.

Mining (Hermans et al. 2017; Schroff et al. 2015):
- ``"batch_hard"``: per anchor, the farthest positive and the closest negative.
- ``"semi_hard"``: per (anchor, positive) pair, the closest negative that is still farther than
  the positive (``d_ap < d_an < d_ap + margin``); if none exists, the hardest negative.
- ``"all"``: every valid triplet with a non-zero loss, averaged over those.
"""

from __future__ import annotations

import torch


def pairwise_distances(embeddings: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``(B, D)`` -> ``(B, B)`` Euclidean distances; the sqrt is kept away from 0 so its
    gradient stays finite on the diagonal and for duplicate points."""
    sq = embeddings.pow(2).sum(dim=1)
    d2 = sq[:, None] - 2.0 * embeddings @ embeddings.T + sq[None, :]
    return d2.clamp_min(0.0).add(eps).sqrt()


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                 mining: str = "batch_hard") -> tuple[torch.Tensor, dict[str, float]]:
    """Mean triplet hinge ``max(0, d(a,p) − d(a,n) + margin)`` over mined triplets.

    Args:
        embeddings: ``(batch, dim)``.
        labels: ``(batch,)`` integer ids; every anchor needs at least one positive and one
            negative in the batch (anchors without are ignored).
        margin: hinge margin in distance units.
        mining: ``"batch_hard" | "semi_hard" | "all"``.

    Returns:
        ``(loss, logs)``: scalar loss and floats for logging (``frac_active``: share of
        mined triplets with non-zero loss; ``d_ap``, ``d_an``: mean distances).
    """
    if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
        raise ValueError(f"expected (B, D) embeddings and (B,) labels, got "
                         f"{tuple(embeddings.shape)} and {tuple(labels.shape)}")
    d = pairwise_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask = same & ~eye
    neg_mask = ~same
    valid_anchor = pos_mask.any(1) & neg_mask.any(1)
    if not bool(valid_anchor.any()):
        zero = embeddings.sum() * 0.0
        return zero, {"frac_active": 0.0, "d_ap": 0.0, "d_an": 0.0}
    big = torch.finfo(d.dtype).max / 4

    if mining == "batch_hard":
        d_ap = torch.where(pos_mask, d, torch.zeros_like(d)).amax(1)
        d_an = torch.where(neg_mask, d, torch.full_like(d, big)).amin(1)
        losses = (d_ap - d_an + margin).clamp_min(0.0)[valid_anchor]
        d_ap, d_an = d_ap[valid_anchor], d_an[valid_anchor]
    elif mining in ("semi_hard", "all"):
        # Every (anchor a, positive p) pair against every negative n: (B, B, B) is fine for
        # the batch sizes used here (<= a few hundred).
        a_idx, p_idx = pos_mask.nonzero(as_tuple=True)
        keep = valid_anchor[a_idx]
        a_idx, p_idx = a_idx[keep], p_idx[keep]
        d_ap = d[a_idx, p_idx]  # (P,)
        d_an_all = d[a_idx]  # (P, B)
        negs = neg_mask[a_idx]
        if mining == "semi_hard":
            semi = negs & (d_an_all > d_ap[:, None]) & (d_an_all < d_ap[:, None] + margin)
            hardest = torch.where(negs, d_an_all, torch.full_like(d_an_all, big)).amin(1)
            semi_min = torch.where(semi, d_an_all, torch.full_like(d_an_all, big)).amin(1)
            d_an = torch.where(semi.any(1), semi_min, hardest)
            losses = (d_ap - d_an + margin).clamp_min(0.0)
        else:
            all_l = (d_ap[:, None] - d_an_all + margin).clamp_min(0.0) * negs
            n_active = (all_l > 0).sum()
            loss = all_l.sum() / n_active.clamp_min(1)
            d_an = d_an_all[negs]
            return loss, {"frac_active": float(n_active) / max(1, int(negs.sum())),
                          "d_ap": float(d_ap.mean()), "d_an": float(d_an.mean())}
    else:
        raise ValueError(f"unknown mining {mining!r}; use 'batch_hard', 'semi_hard' or 'all'")
    return losses.mean(), {"frac_active": float((losses > 0).float().mean()),
                           "d_ap": float(d_ap.detach().mean()),
                           "d_an": float(d_an.detach().mean())}
