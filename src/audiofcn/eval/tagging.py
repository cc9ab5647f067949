"""Tagging evaluation: ROC-AUC and PR-AUC macro over tags, per-tag table, track-level scores.

Protocol (as the tagging papers): chunk predictions are averaged per track (see
:func:`audiofcn.tagging.predict_track`), then each tag's ROC-AUC and average precision (PR-AUC)
are computed over tracks with scikit-learn and macro-averaged. A tag whose test tracks are all
positive or all negative has no defined AUC: it is skipped and listed under ``skipped_tags``,
so the macro average is over ``n_evaluated_tags`` tags. Single-label models also get accuracy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audiofcn.io import AudioRecord, atomic_output, load_audio


def tagging_scores(y_true: np.ndarray, y_score: np.ndarray,
                   labels: Sequence[str]) -> dict[str, Any]:
    """Macro ROC-AUC / PR-AUC over tags with a per-tag table.

    Args:
        y_true: ``(n_tracks, n_labels)`` 0/1 ground truth.
        y_score: ``(n_tracks, n_labels)`` scores (probabilities).
        labels: tag names, one per column.

    Returns:
        ``{"roc_auc_macro", "pr_auc_macro", "n_tracks", "n_evaluated_tags", "skipped_tags",
        "per_tag": {tag: {"roc_auc", "pr_auc", "positives"}}}``; the macro scores are ``None``
        when no tag has both classes.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2 or y_true.shape[1] != len(labels):
        raise ValueError(f"shapes disagree: y_true {y_true.shape}, y_score {y_score.shape}, "
                         f"{len(labels)} labels")
    per_tag: dict[str, dict[str, float | int]] = {}
    skipped: list[str] = []
    for j, tag in enumerate(labels):
        pos = int(y_true[:, j].sum())
        if pos == 0 or pos == y_true.shape[0]:
            skipped.append(tag)
            continue
        per_tag[tag] = {"roc_auc": float(roc_auc_score(y_true[:, j], y_score[:, j])),
                        "pr_auc": float(average_precision_score(y_true[:, j], y_score[:, j])),
                        "positives": pos}
    roc = [v["roc_auc"] for v in per_tag.values()]
    pr = [v["pr_auc"] for v in per_tag.values()]
    return {"roc_auc_macro": float(np.mean(roc)) if roc else None,
            "pr_auc_macro": float(np.mean(pr)) if pr else None,
            "n_tracks": int(y_true.shape[0]), "n_evaluated_tags": len(per_tag),
            "skipped_tags": skipped, "per_tag": per_tag}


def classification_scores(y_index: np.ndarray, y_score: np.ndarray,
                          labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy and one-vs-rest macro AUCs for single-label predictions.

    ``y_index``: ``(n,)`` true class indices; ``y_score``: ``(n, n_labels)`` probabilities.
    """
    y_index = np.asarray(y_index)
    onehot = np.eye(len(labels))[y_index]
    out = tagging_scores(onehot, y_score, labels)
    pred = np.asarray(y_score).argmax(axis=1)
    out["accuracy"] = float((pred == y_index).mean())
    confusion = np.zeros((len(labels), len(labels)), dtype=int)
    np.add.at(confusion, (y_index, pred), 1)
    out["confusion"] = confusion.tolist()
    return out


def evaluate_tagger(model: nn.Module, records: Sequence[AudioRecord],
                    root: str | os.PathLike[str] | None, batch_size: int = 16,
                    hop: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Track-level evaluation of a tagger on manifest records (chunk predictions averaged).

    Multi-label models are scored on ``record.tags``, single-label ones on ``record.label``.
    """
    from tqdm import tqdm

    from audiofcn.tagging import predict_track
    from audiofcn.train.classification import record_target

    cfg = model.config
    model.eval()
    targets, scores = [], []
    for r in tqdm(records, desc="evaluating", disable=not progress, leave=False):
        audio, _ = load_audio(r.resolve(root), sr=cfg.sample_rate)
        scores.append(predict_track(model, audio[0], batch_size, hop).numpy())
        targets.append(record_target(r, cfg.labels, cfg.multi_label).numpy())
    y_score = np.stack(scores)
    if cfg.multi_label:
        report = tagging_scores(np.stack(targets), y_score, cfg.labels)
    else:
        report = classification_scores(np.array(targets), y_score, cfg.labels)
    report["model"] = getattr(model, "model_name", type(model).__name__)
    report["num_parameters"] = sum(p.numel() for p in model.parameters())
    report["protocol"] = ("track-level: chunk probabilities averaged per track; macro over "
                          "tags with both classes present")
    return report


def write_report(report: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write the report as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return Path(path)


def plot_per_tag_auc(report: dict[str, Any], path: str | os.PathLike[str],
                     title: str | None = None) -> Path:
    """Horizontal bar chart of per-tag ROC-AUC and PR-AUC, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_tag = report["per_tag"]
    tags = sorted(per_tag, key=lambda t: per_tag[t]["roc_auc"])
    fig, ax = plt.subplots(figsize=(7, 1.5 + 0.28 * max(1, len(tags))))
    y = np.arange(len(tags))
    ax.barh(y + 0.2, [per_tag[t]["roc_auc"] for t in tags], 0.4, label="ROC-AUC")
    ax.barh(y - 0.2, [per_tag[t]["pr_auc"] for t in tags], 0.4, label="PR-AUC")
    ax.set_yticks(y, tags)
    ax.set_xlim(0, 1)
    macro = report.get("roc_auc_macro")
    head = title or report.get("model", "tagger")
    ax.set_title(f"{head}: macro ROC-AUC {macro:.3f}, PR-AUC {report['pr_auc_macro']:.3f}"
                 if macro is not None else head, fontsize=9)
    if report.get("skipped_tags"):
        ax.set_xlabel(f"skipped (one class in test): {', '.join(report['skipped_tags'])}",
                      fontsize=7)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


def plot_attention(model: nn.Module, audio: torch.Tensor, path: str | os.PathLike[str],
                   title: str = "") -> Path:
    """Log-mel of one chunk with the [CLS] attention over time of a self-attention tagger
    (last layer, mean over heads) drawn under it; written atomically as PNG.

    ``audio``: ``(time,)`` at the model's rate; the first ``input_length`` samples are used.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = audio[: model.config.input_length][None]
    model.eval()
    with torch.no_grad():
        maps, times = model.attention_maps(x)
        logmel = model.frontend(x)[0]
        probs = torch.sigmoid(model(x))[0]
    att = maps[0, -1].mean(0).numpy()
    top = ", ".join(f"{model.config.labels[i]} {float(probs[i]):.2f}"
                    for i in probs.argsort(descending=True)[:3])
    seconds = x.shape[-1] / model.config.sample_rate
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8, 4.5), sharex=True,
                                 gridspec_kw={"height_ratios": [3, 1]})
    a1.imshow(logmel.numpy(), origin="lower", aspect="auto", cmap="magma",
              extent=(0, seconds, 0, logmel.shape[0]))
    a1.set(ylabel="mel bin", title=f"{title} {top}".strip())
    a2.bar(times.numpy(), att, width=model.seconds_per_token, align="edge")
    a2.set(xlabel="time (s)", ylabel="[CLS] attention")
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return Path(path)


__all__ = ["classification_scores", "evaluate_tagger", "plot_attention", "plot_per_tag_auc",
           "tagging_scores", "write_report"]
