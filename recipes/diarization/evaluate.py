"""Evaluate diarization: DER, JER and speaker counts on simulated conversations and AMI excerpts.

    # simulated 2-4-speaker conversations of speechocean762 test/ speakers (never trained on),
    # without and with overlap; AMI excerpts (a copy of pyannote/pyannote-audio tests/data)
    python recipes/diarization/evaluate.py --data runs/diarization/data --split test \
        --ami ~/data/pyannote/tests/data --out runs/diarization/eval_test.json
    # choose settings on validation speakers only (never on test/ or AMI): four conditions,
    # held-out speechocean762 train/ speakers (so, so_overlap), held-out LibriSpeech speakers
    # (ls) and meeting-like short interleaved turns (meeting); a change must win on all four
    python recipes/diarization/evaluate.py --data runs/diarization/data --split valid \
        --n 30 --embedders rcnn --clusterings '[{...}, {...}]' --no-oracle \
        --out runs/diarization/valid.json

DER convention: pyannote.metrics ``DiarizationErrorRate(collar=0.5)``, i.e. +-0.25 s around each
reference boundary is not scored (md-eval's 0.25-s collar); overlapped speech is scored (and
reported again with ``skip_overlap=True``). DER is summed over files (total error / total
reference speech). RCNN, MFCC statistics and Resemblyzer use the same VAD, windows and
clustering in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from audiofcn.diarization import ClusteringConfig, DiarizationConfig, Segment, diarize
from audiofcn.diarization.embedders import (
    MFCCStatsEmbedder,
    RCNNEmbedder,
    ResemblyzerEmbedder,
    WindowEmbedder,
)
from audiofcn.diarization.simulate import SimConfig, cut_turns, simulate
from audiofcn.diarization.training import read_manifest
from audiofcn.io.audio import atomic_output

# keys of a --clusterings entry that are DiarizationConfig fields rather than clustering ones
PIPELINE_KEYS = ("min_cluster_speech", "min_speech_in_window", "smooth_windows", "scales",
                 "scale_weights", "context")

# Conditions of simulated conversations: speaker-name prefix, turn lengths (None = whole
# utterances), simulation settings, seed offset. The valid ones use validation speakers only
# (never trained on); "meeting" mimics the AMI excerpts' short, interleaved, overlapping turns.
MEETING = SimConfig(pause_mean=0.3, min_pause=0.1, overlap_prob=0.2, overlap=(0.2, 1.0))
CONDITIONS: dict[str, tuple[str, tuple[float, float] | None, SimConfig, int]] = {
    "sim_no_overlap": ("", None, SimConfig(), 0),
    "sim_overlap": ("", None, SimConfig(overlap_prob=0.3), 1),
    "so": ("so", None, SimConfig(), 0),
    "so_overlap": ("so", None, SimConfig(overlap_prob=0.3), 1),
    "ls": ("ls", (2.0, 5.0), SimConfig(), 2),
    "meeting": ("so", (0.5, 3.0), MEETING, 3),
}
DEFAULT_CONDITIONS = {"valid": "so,so_overlap,ls,meeting", "test": "sim_no_overlap,sim_overlap"}


class CachedEmbedder:
    """Remembers window embeddings per chunk so several clusterings reuse them."""

    def __init__(self, inner: WindowEmbedder) -> None:
        self.inner, self.sample_rate, self.cache = inner, inner.sample_rate, {}
        self.seconds = 0.0

    def embed_chunk(self, audio: np.ndarray, window: float, hop: float) -> np.ndarray:
        key = (len(audio), float(audio[:: max(1, len(audio) // 997)].sum()), window, hop)
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = self.inner.embed_chunk(audio, window, hop)
            self.seconds += time.perf_counter() - t0
        return self.cache[key]

    def embed_scales(self, audio: np.ndarray, window: float, hop: float,
                     scales: tuple[float, ...]) -> np.ndarray:
        if not hasattr(self.inner, "embed_scales"):
            raise ValueError("this embedder has no multi-scale embeddings")
        key = (len(audio), float(audio[:: max(1, len(audio) // 997)].sum()), window, hop,
               tuple(scales))
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = self.inner.embed_scales(audio, window, hop, tuple(scales))
            self.seconds += time.perf_counter() - t0
        return self.cache[key]


def conversations(data: Path, split: str, n: int, overlap_prob: float, seed: int,
                  utts_per_speaker: int = 3, prefix: str = "",
                  turns: tuple[float, float] | None = None, sim: SimConfig | None = None,
                  tag: str | None = None) -> list[tuple[str, np.ndarray, list[Segment]]]:
    speakers = {k: v for k, v in read_manifest(data / "speakers.jsonl", split).items()
                if k.startswith(prefix)}
    names = sorted(speakers)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 2 + i % 3
        chosen = [names[j] for j in rng.choice(len(names), k, replace=False)]
        utts = []
        for s in chosen:
            recs = speakers[s]
            for j in rng.choice(len(recs), min(utts_per_speaker, len(recs)), replace=False):
                r = recs[j]
                x, _ = sf.read(str(data / "root" / r["path"]), start=r["start"],
                               stop=r["end"], dtype="float32", always_2d=True)
                utts.append((s, x.mean(1)))
        if turns is not None:
            utts = cut_turns(utts, rng, turns)
        mix, ref = simulate(utts, rng, sim or SimConfig(overlap_prob=overlap_prob))
        out.append((f"{split}_{tag or ('ov' if overlap_prob else 'nov')}_{i:03d}", mix, ref))
    return out


def ami_items(root: Path) -> list[tuple[str, np.ndarray, list[Segment], Any]]:
    from pyannote.core import Segment as PSegment
    from pyannote.core import Timeline

    from audiofcn.diarization import read_rttm

    items = []
    for part in ("train", "development", "test"):
        ref = read_rttm(root / f"debug.{part}.rttm")
        uem: dict[str, list] = {}
        if (root / f"debug.{part}.uem").exists():
            for line in (root / f"debug.{part}.uem").read_text().splitlines():
                f = line.split()
                if len(f) >= 4:
                    uem.setdefault(f[0], []).append(PSegment(float(f[2]), float(f[3])))
        for uri in (root / f"debug.{part}.lst").read_text().split():
            # one excerpt's file name is non-ASCII (trñ00.wav) while its RTTM says trn00
            key = uri if uri in ref else unicodedata.normalize("NFKD", uri).encode(
                "ascii", "ignore").decode()
            x, sr = sf.read(str(root / f"{uri}.wav"), dtype="float32", always_2d=True)
            if sr != 16000:
                raise SystemExit(f"{uri}: {sr} Hz")
            items.append((key, x.mean(1), ref.get(key, []),
                          Timeline(uem[key]) if key in uem else None))
    return items


def annotation(segs: list[Segment], uri: str):
    from pyannote.core import Annotation
    from pyannote.core import Segment as PSegment

    a = Annotation(uri=uri)
    for i, s in enumerate(segs):
        a[PSegment(s.start, s.end), i] = s.speaker
    return a


def score(items: list, hyps: list[list[Segment]], counts: list[int]) -> dict[str, float]:
    from pyannote.core import Segment as PSegment
    from pyannote.core import Timeline
    from pyannote.metrics.diarization import DiarizationErrorRate, JaccardErrorRate

    der = DiarizationErrorRate(collar=0.5)
    der_so = DiarizationErrorRate(collar=0.5, skip_overlap=True)
    jer = JaccardErrorRate(collar=0.5)
    exact = []
    for item, hyp, k in zip(items, hyps, counts, strict=True):
        uri, ref = item[0], annotation(item[2], item[0])
        uem = item[3] if len(item) > 3 else Timeline([PSegment(0.0, len(item[1]) / 16000)])
        h = annotation(hyp, uri)
        der(ref, h, uem=uem)
        der_so(ref, h, uem=uem)
        jer(ref, h, uem=uem)
        n_ref = len(ref.crop(uem).labels())
        exact.append(k == n_ref)
    comp = der[:]  # accumulated components
    total = max(1e-9, comp["total"])
    return {"der": abs(der), "der_skip_overlap": abs(der_so), "jer": abs(jer),
            "missed": comp["missed detection"] / total,
            "false_alarm": comp["false alarm"] / total,
            "confusion": comp["confusion"] / total,
            "exact_count": float(np.mean(exact)), "files": len(items)}


def run_set(items: list, emb: CachedEmbedder, cfg: DiarizationConfig,
            num_speakers: bool = False, oracle_speech: bool = False
            ) -> tuple[dict[str, float], list[dict]]:
    hyps, counts, per = [], [], []
    for it in items:
        n_ref = len({s.speaker for s in it[2]})
        res = diarize(it[1], 16000, embedder=emb, config=cfg, uri=it[0],
                      num_speakers=n_ref if num_speakers else None,
                      speech=[(s.start, s.end) for s in it[2]] if oracle_speech else None)
        hyps.append(res.segments)
        counts.append(res.num_speakers)
        per.append({"uri": it[0], "ref_speakers": n_ref, "hyp_speakers": res.num_speakers})
    return score(items, hyps, counts), per


def make_embedder(name: str, model: Path | None) -> CachedEmbedder:
    if name == "rcnn":
        return CachedEmbedder(RCNNEmbedder.from_pretrained(model))
    if name == "mfcc":
        return CachedEmbedder(MFCCStatsEmbedder())
    if name == "resemblyzer":
        return CachedEmbedder(ResemblyzerEmbedder())
    raise SystemExit(f"unknown embedder {name!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="evaluate diarization")
    ap.add_argument("--data", type=Path, default=Path("runs/diarization/data"))
    ap.add_argument("--split", choices=["valid", "test"], default="test")
    ap.add_argument("--ami", type=Path, default=None, help="pyannote-audio tests/data folder")
    ap.add_argument("--n", type=int, default=30, help="simulated conversations per condition")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--speakers", default="",
                    help='speaker-name prefix of the sim_* conditions, e.g. "so": '
                         "speechocean762 speakers only (the domain of the test speakers)")
    ap.add_argument("--conditions", default=None,
                    help="comma-separated simulated conditions (CONDITIONS; default: "
                         "so,so_overlap,ls,meeting for valid, sim_no_overlap,sim_overlap "
                         "for test)")
    ap.add_argument("--no-oracle", action="store_true",
                    help="skip the oracle-count and oracle-speech passes (faster tuning)")
    ap.add_argument("--embedders", default="rcnn,mfcc,resemblyzer")
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--method", default="spectral")
    ap.add_argument("--count", default=None, help="spectral count rule: ratio or eigengap")
    ap.add_argument("--prune", type=float, default=None)
    ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--clusterings", default=None,
                    help='JSON list of clustering settings to run side by side, e.g. '
                         '\'[{"method": "ahc", "threshold": 0.3}]\' (PIPELINE_KEYS such as '
                         '"min_cluster_speech" go to DiarizationConfig); which one is reported '
                         'must be chosen on the valid split')
    ap.add_argument("--grid", action="store_true",
                    help="try clustering settings (valid split only) and report each")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if args.grid and args.split == "test":
        raise SystemExit("--grid tunes settings: use --split valid, never test")
    base = ClusteringConfig(method=args.method)
    if args.prune is not None:
        base.prune = args.prune
    if args.threshold is not None:
        base.threshold = args.threshold
    if args.count is not None:
        base.count = args.count
    settings = [base]
    pipeline: list[dict[str, Any]] = [{}]
    if args.clusterings:
        settings = [ClusteringConfig(**{k: v for k, v in d.items() if k not in PIPELINE_KEYS})
                    for d in json.loads(args.clusterings)]
        pipeline = [{k: v for k, v in d.items() if k in PIPELINE_KEYS}
                    for d in json.loads(args.clusterings)]
    if args.grid:
        settings = [ClusteringConfig("spectral", prune=p, count=c) for p in (0.25, 0.5, 1.0)
                    for c in ("ratio", "eigengap")] + \
                   [ClusteringConfig("ahc", threshold=t) for t in (0.3, 0.45, 0.6, 0.75, 0.9)]
        pipeline = [{}] * len(settings)
    sets: dict[str, list] = {}
    for cond in (args.conditions or DEFAULT_CONDITIONS[args.split]).split(","):
        if cond not in CONDITIONS:
            raise SystemExit(f"unknown condition {cond!r} (use {', '.join(CONDITIONS)})")
        prefix, turns, sim, off = CONDITIONS[cond]
        sets[cond] = conversations(args.data, args.split, args.n, sim.overlap_prob,
                                   args.seed + off, prefix=prefix or args.speakers,
                                   turns=turns, sim=sim, tag=cond)
        if not sets[cond]:
            raise SystemExit(f"no conversations for {cond!r}")
    if args.ami is not None:
        sets["ami"] = ami_items(args.ami)
    report: dict[str, Any] = {"split": args.split, "n": args.n, "seed": args.seed,
                              "speakers": args.speakers,
                              "collar": 0.5, "results": []}
    for name in args.embedders.split(","):
        emb = make_embedder(name, args.model)
        for (setting, extra), (set_name, items) in itertools.product(
                zip(settings, pipeline, strict=True), sets.items()):
            cfg = DiarizationConfig(clustering=setting, **{
                k: tuple(v) if isinstance(v, list) else v for k, v in extra.items()})
            t0 = time.perf_counter()
            res, per = run_set(items, emb, cfg)
            nan = {"der": float("nan"), "confusion": float("nan"), "exact_count": float("nan")}
            oracle, _ = (nan, None) if args.no_oracle else run_set(items, emb, cfg,
                                                                  num_speakers=True)
            osad, _ = (nan, None) if args.no_oracle else run_set(items, emb, cfg,
                                                                oracle_speech=True)
            audio_s = sum(len(it[1]) for it in items) / 16000
            row = {"embedder": name, "set": set_name, "clustering": {**vars(setting), **extra},
                   **res,
                   "der_oracle_count": oracle["der"],
                   "der_oracle_speech": osad["der"], "confusion_oracle_speech": osad["confusion"],
                   "exact_count_oracle_speech": osad["exact_count"], "audio_seconds": audio_s,
                   "wall_seconds_first_pass": time.perf_counter() - t0, "per_file": per}
            report["results"].append(row)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                              for k, v in row.items() if k != "per_file"}), flush=True)
    with atomic_output(args.out) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
