"""Evaluate a trained tagger on a held-out split: JSON report + PNG of per-tag AUC.

  python recipes/tagging/evaluate.py --checkpoint runs/tagging/synth_fcn/best.safetensors \
      --manifest runs/tagging/synth/manifest.jsonl --split test --out runs/tagging/synth_fcn

Track-level protocol: each track is cut into model-length chunks, chunk probabilities are
averaged, then ROC-AUC / PR-AUC per tag (sklearn) are macro-averaged over tags with both
classes in the split (the others are listed as skipped). Single-label models also get accuracy
and a confusion matrix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--audio-root", help="folder the manifest's relative paths start "
                   "from (default: the manifest's folder; for data_manifests builds, "
                   "the dataset root)")
    p.add_argument("--split", default="test")
    p.add_argument("--out", required=True, help="folder for report_<split>.json/.png")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from audiofcn.eval.tagging import evaluate_tagger, plot_per_tag_auc, write_report
    from audiofcn.io import read_manifest
    from audiofcn.models import load_model

    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    records = read_manifest(args.manifest, split=args.split)
    if not records:
        sys.exit(f"{args.manifest}: no records in split {args.split!r}")
    root = Path(args.audio_root) if args.audio_root else Path(args.manifest).parent
    report = evaluate_tagger(model, records, root, args.batch_size,
                             progress=sys.stderr.isatty())
    report.update(checkpoint=str(args.checkpoint), manifest=str(args.manifest),
                  split=args.split)
    out = Path(args.out)
    write_report(report, out / f"report_{args.split}.json")
    if report["per_tag"]:
        plot_per_tag_auc(report, out / f"report_{args.split}.png",
                         title=f"{report['model']} on {args.split}")
    if hasattr(model, "attention_maps"):  # Won et al.'s interpretability view
        from audiofcn.eval.tagging import plot_attention
        from audiofcn.io import load_audio

        for r in records[:3]:
            audio, _ = load_audio(r.resolve(root), sr=model.config.sample_rate)
            stem = Path(r.path).stem
            plot_attention(model, audio[0], out / f"attention_{stem}.png",
                           title=f"{stem} (true: {', '.join(r.tags)}) predicted:")
    line = f"{report['model']} {args.split}: {report['n_tracks']} tracks, "
    if report.get("roc_auc_macro") is not None:
        line += (f"ROC-AUC {report['roc_auc_macro']:.4f}, PR-AUC {report['pr_auc_macro']:.4f} "
                 f"over {report['n_evaluated_tags']} tags")
    if "accuracy" in report:
        line += f", accuracy {report['accuracy']:.4f}"
    if report["skipped_tags"]:
        line += f" (skipped, one class only: {', '.join(report['skipped_tags'])})"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
