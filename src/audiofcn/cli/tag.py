"""``audiofcn tag`` (tag files and folders) and ``audiofcn models`` (the tagger zoo).

``audiofcn tag music/ --top 5 --out tags.csv`` finds audio files recursively, cuts each track
into the model's chunks, runs them in batches, averages the chunk probabilities and writes one
row per track. Unreadable files are reported and skipped; the rest are still tagged, and the
failures are listed at the end (exit status 1 when any file failed). Output files are written
atomically: a crash never leaves a half-written table.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from audiofcn.cli.checks import positive_float, positive_int
from audiofcn.cli.main import UserError

# Same as audiofcn.tagging.DEFAULT_TAGGER (a test checks); not imported, to keep the CLI's
# start-up free of torch.
DEFAULT_TAGGER = "msd50_crnn"

SYNTH_TAGGER = "fcn_synth"  # the demo's catalog is rendered General-MIDI songs with its tags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="tag audio files or folders with a music tagger",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="PATH", help="audio files and/or folders")
    p.add_argument("--model", default=DEFAULT_TAGGER,
                   help="shipped tagger name (see `audiofcn models`) or a .safetensors "
                        f"checkpoint (default {DEFAULT_TAGGER}: 50 Million Song Dataset tags "
                        f"for real music; {SYNTH_TAGGER}: instruments/tempo/mode)")
    p.add_argument("--top", type=positive_int, default=5, help="tags to list per track (default 5)")
    p.add_argument("--out", help="write results to .csv or .json (default: print)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="chunks per forward pass")
    p.add_argument("--hop", type=positive_float, default=None,
                   help="seconds between chunk starts (default: the chunk length, no overlap)")
    p.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true")
    from audiofcn.cli.cluster import add_engine_args

    add_engine_args(p)  # --engine {local,ray}, --address, ...
    p.set_defaults(func=run_tag)

    m = sub.add_parser("models", help="list tagger architectures and shipped taggers with "
                                      "parameter counts, tags, training data and licence")
    m.add_argument("--json", action="store_true")
    m.set_defaults(func=run_models)


def shipped_taggers() -> dict[str, Path]:
    from audiofcn.tagging import shipped_taggers as shipped

    return shipped()


def load_tagger(name_or_path: str):
    """See :func:`audiofcn.tagging.load_tagger` (errors are one-line ``CheckpointError`` s)."""
    from audiofcn.tagging import load_tagger as load

    return load(name_or_path)


def _rows(results: list[Any], top: int) -> list[dict[str, Any]]:
    return [{"path": r.path, "duration_s": round(r.duration, 3),
             "top": [{"tag": t, "score": round(s, 4)} for t, s in r.top(top)],
             "scores": {t: round(s, 4) for t, s in r.scores.items()}} for r in results]


def write_results(path: Path, rows: list[dict[str, Any]], labels: list[str],
                  failures: list[str], model_name: str) -> None:
    """CSV (one row per track: top tags, then every label's score) or JSON, atomically."""
    from audiofcn.io import atomic_output

    if path.suffix.lower() == ".json":
        text = json.dumps({"model": model_name, "tracks": rows, "failures": failures},
                          indent=2)
    elif path.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["path", "duration_s", "top_tags", *labels])
        for r in rows:
            w.writerow([r["path"], r["duration_s"],
                        ";".join(f"{t['tag']}:{t['score']:.3f}" for t in r["top"]),
                        *(f"{r['scores'][lab]:.4f}" for lab in labels)])
        text = buf.getvalue()
    else:
        raise UserError(f"{path}: output must end in .csv or .json")
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def run_tag(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from audiofcn.cli.checks import prepare_output, refuse_overwriting_inputs
    from audiofcn.io import AudioError
    from audiofcn.io.files import find_audio_files
    from audiofcn.tagging import tag_files

    if getattr(args, "engine", "local") == "ray":
        from audiofcn.cli.cluster import run_tag_ray

        return run_tag_ray(args)
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"{args.out}: output must end in .csv or .json")
    if args.out:
        prepare_output(args.out)
    torch.set_num_threads(args.threads)
    for item in args.inputs:
        if not Path(item).exists():
            raise UserError(f"{item}: no such file or folder")
    files, unlisted = find_audio_files(args.inputs)
    for problem in unlisted:
        print(f"audiofcn: error: {problem}", file=sys.stderr)
    if not files:
        raise UserError(f"no audio files found in {', '.join(args.inputs)}")
    if args.out:
        refuse_overwriting_inputs([args.out], [*args.inputs, *files])
    model = load_tagger(args.model)
    hop = int(args.hop * model.config.sample_rate) if args.hop else None
    results, failures = [], list(unlisted)
    bar = tqdm(tag_files(model, files, args.batch_size, hop), total=len(files), unit="file",
               desc="tagging", disable=args.no_progress, file=sys.stderr)
    for res in bar:
        if isinstance(res, AudioError):
            failures.append(str(res))
            bar.write(f"audiofcn: error: {res}", file=sys.stderr)
        else:
            results.append(res)
    rows = _rows(results, args.top)
    if args.out:
        write_results(Path(args.out), rows, list(model.config.labels), failures,
                      model.model_name)
        print(f"tagged {len(rows)} file(s) -> {args.out}")
    else:
        for r in rows:
            print(f"{r['path']}: " + ", ".join(f"{t['tag']} {t['score']:.2f}" for t in r["top"]))
    return report_failures(failures)


def report_failures(failures: list[str]) -> int:
    """List the files that could not be tagged; the exit status (1 when any)."""
    if failures:
        print(f"{len(failures)} file(s) could not be tagged:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0


def architectures() -> list[tuple[str, str, Any, str]]:
    """(family, variant, config, paper parameter count or "") for ``audiofcn models``."""
    from audiofcn.models.attention_tagger import SelfAttentionTaggerConfig
    from audiofcn.models.crnn import CRNNConfig
    from audiofcn.models.fcn import FCN_VARIANTS, FCNConfig
    from audiofcn.models.rawwave import M_VARIANTS, RawWaveCNNConfig
    from audiofcn.models.samplecnn import SampleCNNConfig

    paper_m = {"m3": "0.2M", "m5": "0.5M", "m11": "1.8M", "m18": "3.7M", "m34res": "4M"}
    rows: list[tuple[str, str, Any, str]] = []
    rows += [("fcn", v, FCNConfig.variant(v), "") for v in FCN_VARIANTS]
    rows += [("samplecnn", "3^9", SampleCNNConfig(), ""),
             ("samplecnn", "3^9 SE (α=16)", SampleCNNConfig(block="se"), ""),
             ("samplecnn", "3^9 ReSE-2 + MLA", SampleCNNConfig(block="rese", multi_level=True),
              "")]
    rows += [("rawwave_cnn", v, RawWaveCNNConfig.variant(v), paper_m[v]) for v in M_VARIANTS]
    rows += [("self_attention_tagger", "2 layers, 8 heads", SelfAttentionTaggerConfig(), "")]
    rows += [("crnn", "MSD-50 (Choi et al. 2017)", CRNNConfig(), "396,786")]
    return rows


def run_models(args: argparse.Namespace) -> int:
    from audiofcn.models import model_class
    from audiofcn.models.base import read_checkpoint
    from audiofcn.tagging import MODEL_CARDS

    table = []
    for family, variant, cfg, paper in architectures():
        n = model_class(family)(cfg).num_parameters()
        table.append({"model": family, "variant": variant, "parameters": n,
                      "paper": paper, "labels": len(cfg.labels),
                      "sample_rate": cfg.sample_rate, "input_samples": cfg.input_length})
    shipped = []
    for name, path in shipped_taggers().items():
        blob = read_checkpoint(path)
        n = sum(t.numel() for k, t in blob["state"].items()
                if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        card = MODEL_CARDS.get(name)
        shipped.append({"name": name, "model": blob["model"], "parameters": n,
                        "labels": blob["config"]["labels"], "file": str(path),
                        "size_kb": round(path.stat().st_size / 1024, 1),
                        "default": name == DEFAULT_TAGGER,
                        "vocabulary": card.vocabulary if card else "",
                        "training_data": card.training_data if card else "",
                        "licence": card.licence if card else "",
                        "source": card.source if card else ""})
    if args.json:
        print(json.dumps({"architectures": table, "shipped": shipped}, indent=2))
        return 0
    print("| model | variant | parameters | paper | labels | input |")
    print("|---|---|---:|---:|---:|---|")
    for r in table:
        print(f"| {r['model']} | {r['variant']} | {r['parameters']:,} | {r['paper']} | "
              f"{r['labels']} | {r['input_samples']:,} @ {r['sample_rate']} Hz |")
    print("\nshipped taggers (`audiofcn tag --model NAME`):")
    for s in shipped:
        print(f"  {s['name']}{' (default)' if s['default'] else ''}: {s['model']}, "
              f"{s['parameters']:,} parameters, {len(s['labels'])} tags, {s['size_kb']} kB")
        if s["vocabulary"]:
            print(f"    tags: {s['vocabulary']}\n    trained on: {s['training_data']}\n"
                  f"    licence: {s['licence']} ({s['source']})")
        print(f"    vocabulary: {', '.join(s['labels'])}")
    if not shipped:
        print("  (none)")
    return 0


def demo_step(out: Path, catalog: Path) -> str:
    """Tag the demo catalog with the shipped tagger; score it against the catalog's own tags."""
    import numpy as np
    import torch

    from audiofcn.eval.tagging import tagging_scores
    from audiofcn.io import read_manifest
    from audiofcn.tagging import tag_files
    from audiofcn.train.classification import multi_hot

    torch.set_num_threads(1)
    model = load_tagger(SYNTH_TAGGER)
    records = read_manifest(catalog / "manifest.jsonl")
    files = [r.resolve(catalog) for r in records]
    results = [r for r in tag_files(model, files) if not isinstance(r, Exception)]
    labels = list(model.config.labels)
    write_results(out / "tags.csv", _rows(results, 5), labels, [], model.model_name)
    truth = np.stack([multi_hot(r.tags, labels).numpy() for r in records])
    scores = np.array([[res.scores[lab] for lab in labels] for res in results])
    rep = tagging_scores(truth, scores, labels)
    return (f"{len(results)} songs tagged by {SYNTH_TAGGER} -> {out / 'tags.csv'}; "
            f"ROC-AUC {rep['roc_auc_macro']:.3f} over {rep['n_evaluated_tags']} tags "
            "against the songs' score-derived tags")
