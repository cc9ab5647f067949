"""Print the markdown results tables of docs/tagging.md from the run folders.

  python recipes/tagging/results_table.py [--runs runs/tagging/runs]

Reads each run's ``report_test.json`` (written by evaluate.py) and ``train_info.json``
(written by the trainer); a run without a report is listed as not run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TAGGING = [("baseline: log-mel stats + logistic regression", "baseline"), ("FCN", "fcn"),
           ("SampleCNN", "samplecnn"), ("SampleCNN+SE", "samplecnn_se"),
           ("CNN+self-attention", "attention")]
MSERIES = ["m3", "m5", "m11", "m18", "m34res"]
M_NAMES = {"m34res": "M34-res"}


def _load(run: Path) -> tuple[dict | None, dict | None]:
    rep = run / "report_test.json"
    info = run / "train_info.json"
    return (json.loads(rep.read_text()) if rep.exists() else None,
            json.loads(info.read_text()) if info.exists() else None)


def tagging_table(runs: Path, dataset: str) -> str:
    lines = ["| model | params | epochs | test tracks | ROC-AUC | PR-AUC | skipped tags |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for label, key in TAGGING:
        rep, info = _load(runs / f"{dataset}_{key}")
        if rep is None:
            lines.append(f"| {label} | – | – | – | not run | not run | |")
            continue
        epochs = len(info["history"]) if info else "–"
        lines.append(f"| {label} | {rep['num_parameters']:,} | {epochs} | "
                     f"{rep['n_tracks']} | {rep['roc_auc_macro']:.4f} | "
                     f"{rep['pr_auc_macro']:.4f} | {', '.join(rep['skipped_tags']) or '–'} |")
    return "\n".join(lines)


def mseries_table(runs: Path, prefix: str) -> str:
    lines = ["| model | params | epochs × steps | valid acc. (best epoch) | test clips | "
             "test accuracy | test macro ROC-AUC |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for v in MSERIES:
        rep, info = _load(runs / f"{prefix}{v}")
        if rep is None or info is None:
            continue
        steps = info["train_config"]["max_steps_per_epoch"]
        best = min(info["history"], key=lambda h: h["valid_loss"])
        lines.append(f"| {M_NAMES.get(v, v.upper())} | {rep['num_parameters']:,} | "
                     f"{len(info['history'])} × {steps} | {best['valid_accuracy']:.3f} "
                     f"({best['epoch']}) | {rep['n_tracks']} | {rep['accuracy']:.4f} | "
                     f"{rep['roc_auc_macro']:.4f} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", default="runs/tagging/runs")
    runs = Path(p.parse_args().runs)
    print("### Built-in rendered catalog (19 tags, 80 test songs)\n")
    print(tagging_table(runs, "synth"))
    print("\n### Real instruments (philharmonia + sms_tools clips, 16 tags, 300 test clips)\n")
    print(tagging_table(runs, "instruments"))
    print("\n### FSDD speaker ID (5 speakers, held-out recordings)\n")
    print(mseries_table(runs, "fsdd_"))
    print("\n### FSDD speaker ID, digit recipe (paper widths, 1 s crops, time shift + speed "
          "perturbation ±10 %)\n")
    print(mseries_table(runs, "fsdd_speaker_"))
    print("\n### FSDD digits (held-out speaker: theo test, nicolas valid; paper widths, "
          "1 s crops, time shift + speed perturbation ±10 %)\n")
    print(mseries_table(runs, "fsdd_digit_"))
    print("\n### FSDD digits, ablation: the same recipe without augmentation\n")
    print(mseries_table(runs, "fsdd_digit_noaug_"))
    print("\n### FSDD digits, earlier small recipe (half width, 0.75 s, no time shift)\n")
    print(mseries_table(runs, "fsdd_digit_small_"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
