"""Retrieval evaluation: find the source of transformed excerpts, ours vs baselines.

    python recipes/similarity/evaluate.py \
        --model src/audiofcn/pretrained/embedding_small.safetensors \
        --builtin runs/similarity/eval_data --data-root ../shared/data \
        --datasets builtin,philharmonia,mir1k --out runs/similarity/eval.json

Catalog = every item of a dataset, cut into the model's segments (3 s, hop 1.5 s). Query = an
excerpt (up to 4 s, random start) of a catalog item after a random chain of transformations
*stronger than in training* (pitch ±2 semitones, tempo ±15 %, 12 dB EQ, band limits, reverb up
to RT60 1.15 s, another track mixed 10-20 dB below, noise at 10-30 dB SNR) and real Opus at
8-12 kbps (training only saw a simulated codec). A catalog item's score is its best segment
match to any query segment (as ``audiofcn search``). Relevant items:

- ``builtin``: rendered songs never used in training; relevant = the source song.
- ``philharmonia``: single notes of 15 instruments; relevant = same instrument and pitch
  (the source note and its other dynamics/lengths/articulations).
- ``mir1k``: karaoke clips (mixture = accompaniment + voice); relevant = clips of the same song.

``--catalog heldout`` (default) keeps only files no recipe model may train on
(``recipes/similarity/real.py``): MIR-1K clips of the 8 singers outside
``MIR1K_TRAIN_SINGERS`` and the pitched Philharmonia ``valid``/``test`` files; ``--catalog all``
is every file (the protocol before real recordings were trained on).

Metrics: hit@1, hit@10 (a relevant item in the top 1/10) and mAP; also ``src@1``/``src@10``
(the exact source item). Systems, same queries, same run: the trained net, the same net
untrained (random init, seed 0) and an MFCC-statistics embedding (mean and std of 20 MFCCs per
segment, z-scored with catalog statistics). ``--system tagger:NAME`` (repeatable) adds a shipped
tagger's penultimate features (``audiofcn.tagging``; e.g. ``tagger:msd50_crnn``) cut into the
same segments; each segment is tiled to the tagger's fixed window (29.12 s for the MSD-50
taggers) so it sees music, not silence, over the whole window.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from audiofcn.data.transforms import AugmentConfig, MusicAugment
from audiofcn.index.embedder import SegmentEmbedder
from audiofcn.io import load_audio, read_manifest
from audiofcn.models import load_model
from audiofcn.models.embedding import EmbeddingNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real import trainable  # noqa: E402

SR = 16000
EVAL_AUGMENT = AugmentConfig(
    sample_rate=SR, strength=1.0, p_pitch=0.5, max_semitones=2.0, p_stretch=0.5,
    max_stretch=0.15, p_eq=0.6, eq_db=12.0, p_filter=0.4, p_reverb=0.5, max_rt60=1.0,
    p_mix=0.5, mix_snr_db=(10.0, 20.0), p_noise=0.6, noise_snr_db=(10.0, 30.0), p_codec=0.6,
    codec_kbps=(8.0, 12.0), codec_backend="auto", gain_db=10.0)
EXCERPT_SECONDS = 4.0

Item = tuple[str, torch.Tensor, str]  # (name, waveform (time,), relevance group)


def default_data_root() -> Path:
    env = os.environ.get("AUDIOFCN_DATA_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


def load_builtin(root: Path, limit: int | None) -> list[Item]:
    recs = read_manifest(root / "manifest.jsonl")[:limit]
    return [(r.path, load_audio(r.resolve(root), sr=SR)[0][0], r.path) for r in recs]


def load_mp3(path: Path) -> torch.Tensor:
    """libsndfile's MP3 frame count is an estimate, so load_audio's truncation check can fire
    on intact files; reading with an explicit duration reads what is there."""
    from audiofcn.io import audio_info

    return load_audio(path, sr=SR, duration=audio_info(path).duration + 1.0)[0][0]


def load_philharmonia(root: Path, limit: int | None) -> list[Item]:
    items = []
    for p in sorted((root / "philharmonia").glob("*.mp3")):
        m = re.match(r"^([a-z-]+)_([A-G]s?\d)_", p.name)
        if not m:  # percussion files have no pitch
            continue
        items.append((p.name, load_mp3(p), f"{m.group(1)}:{m.group(2)}"))
    return items[:limit] if limit else items


def load_mir1k(root: Path, limit: int | None) -> list[Item]:
    items = []
    for p in sorted((root / "mir1k" / "Wavfile").glob("*.flac")):
        singer, song, _ = p.stem.split("_")
        stereo, _ = load_audio(p, sr=SR, mono=False, expected_channels=2)
        items.append((p.name, stereo.sum(0) * 0.5, f"{singer}_{song}"))
    return items[:limit] if limit else items


def tagger_embedder(name: str, segment_seconds: float, hop_seconds: float) -> SegmentEmbedder:
    """A shipped tagger's penultimate features (z-scored + normalised later) on the same
    segments as the other systems (cut at ``SR``, resampled to the tagger's rate); each
    segment is repeated to fill the tagger's window."""
    from audiofcn.io import resample
    from audiofcn.tagging import load_tagger

    model = load_tagger(name)
    length, rate = model.config.input_length, model.config.sample_rate

    @torch.inference_mode()
    def embed(x: torch.Tensor) -> np.ndarray:
        x = resample(x, SR, rate)
        tiled = x.repeat(1, -(-length // x.shape[1]))[:, :length]
        return model.embed(tiled).float().numpy()

    return SegmentEmbedder(embed, SR, segment_seconds, hop_seconds, batch_size=4)


def parse_system(spec: str) -> str:
    """``tagger:NAME`` -> ``NAME``; anything else is a usage error."""
    kind, _, name = spec.partition(":")
    if kind != "tagger" or not name:
        raise argparse.ArgumentTypeError(f"unknown system {spec!r} (expected tagger:NAME)")
    return name


LOADERS: dict[str, Callable[[Path, int | None], list[Item]]] = {
    "philharmonia": load_philharmonia, "mir1k": load_mir1k}


def mfcc_embedder(segment_seconds: float, hop_seconds: float) -> SegmentEmbedder:
    import librosa

    def embed(x: torch.Tensor) -> np.ndarray:
        feats = []
        for seg in x.numpy():
            m = librosa.feature.mfcc(y=seg, sr=SR, n_mfcc=20, n_fft=1024, hop_length=256)
            feats.append(np.concatenate([m.mean(1), m.std(1)]))
        return np.asarray(feats, dtype=np.float32)  # z-scored + normalised later

    return SegmentEmbedder(embed, SR, segment_seconds, hop_seconds)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Queries are made on one thread whatever ``--threads`` is: resampling and reverb give
    thread-count-dependent floating-point results, which the Opus step can amplify into
    different queries (and baseline rows that change with ``--threads``)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_queries(items: list[Item], n: int, seed: int, augment: AugmentConfig = EVAL_AUGMENT
                 ) -> list[tuple[int, torch.Tensor]]:
    """``n`` (source index, transformed excerpt) pairs; same for every system."""
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    aug = MusicAugment(augment)
    picks = rng.choice(len(items), size=min(n, len(items)), replace=False)
    out = []
    with one_torch_thread():
        for i in picks:
            w = items[i][1]
            ex = int(EXCERPT_SECONDS * SR)
            start = int(rng.integers(0, max(1, w.shape[0] - ex + 1)))
            excerpt = w[start:start + ex]
            other = items[(i + 1 + rng.integers(0, len(items) - 1)) % len(items)][1]
            other = torch.nn.functional.pad(other[:excerpt.shape[0]],
                                            (0, max(0, excerpt.shape[0] - other.shape[0])))
            out.append((int(i), aug(excerpt[None], g, others=other[None])[0]))
    return out


class SystemIndex:
    """One system's catalog: segment embeddings of every item (z-scored for MFCC)."""

    def __init__(self, embedder: SegmentEmbedder, items: list[Item], zscore: bool) -> None:
        self.embedder, self.zscore = embedder, zscore
        cat = [embedder.embed_audio(w).embeddings for _, w, _ in items]
        self.owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(cat)])
        C = np.concatenate(cat)
        # MFCC statistics: standardise each dimension with catalog statistics.
        self.mu, self.sd = (C.mean(0), C.std(0) + 1e-6) if zscore else (0.0, 1.0)
        C = (C - self.mu) / self.sd
        self.C = C / np.linalg.norm(C, axis=1, keepdims=True)
        self.groups = np.array([g for _, _, g in items])

    def evaluate(self, queries: list[tuple[int, torch.Tensor]]) -> dict[str, float]:
        hits1, hits10, aps, src1, src10 = [], [], [], [], []
        for src, wave in queries:
            q = (self.embedder.embed_audio(wave).embeddings - self.mu) / self.sd
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
            seg_scores = (q @ self.C.T).max(0)  # best query segment per catalog segment
            item_scores = np.full(len(self.groups), -np.inf)
            np.maximum.at(item_scores, self.owner, seg_scores)
            order = np.argsort(-item_scores, kind="stable")
            rel = self.groups[order] == self.groups[src]
            hits1.append(rel[0])
            hits10.append(rel[:10].any())
            ranks = np.flatnonzero(rel) + 1
            aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
            pos = int(np.flatnonzero(order == src)[0])
            src1.append(pos == 0)
            src10.append(pos < 10)
        return {"hit@1": float(np.mean(hits1)), "hit@10": float(np.mean(hits10)),
                "mAP": float(np.mean(aps)), "src@1": float(np.mean(src1)),
                "src@10": float(np.mean(src10))}


SINGLE = {  # one transformation at a time, at evaluation strength (--per-transform)
    "pitch": dict(p_pitch=1.0), "stretch": dict(p_stretch=1.0), "eq+filter":
    dict(p_eq=1.0, p_filter=1.0), "reverb": dict(p_reverb=1.0), "mix": dict(p_mix=1.0),
    "noise": dict(p_noise=1.0), "opus": dict(p_codec=1.0)}


def single_transform_queries(items: list[Item], n: int, seed: int, name: str
                             ) -> list[tuple[int, torch.Tensor]]:
    off = {k: 0.0 for k in ("p_pitch", "p_stretch", "p_eq", "p_filter", "p_reverb", "p_mix",
                            "p_noise", "p_codec")}
    cfg = AugmentConfig(**{**EVAL_AUGMENT.__dict__, **off, **SINGLE[name]})
    return make_queries(items, n, seed, cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="similarity retrieval evaluation")
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--builtin", type=Path, default=Path("runs/similarity/eval_data"),
                    help="rendered songs not used in training (prepare.py --seed 99)")
    ap.add_argument("--data-root", type=Path, default=default_data_root())
    ap.add_argument("--datasets", default="builtin,philharmonia,mir1k")
    ap.add_argument("--n-queries", type=int, default=200)
    ap.add_argument("--limit", type=int, default=None, help="catalog items per dataset")
    ap.add_argument("--catalog", choices=("heldout", "all"), default="heldout",
                    help="real datasets: only files never trained on (default) or every file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--per-transform", default="",
                    help="datasets (comma list) to also score one transformation at a time")
    ap.add_argument("--per-transform-queries", type=int, default=60)
    ap.add_argument("--system", type=parse_system, action="append", default=[],
                    metavar="tagger:NAME", help="extra system: a shipped tagger's features")
    ap.add_argument("--out", type=Path, default=Path("runs/similarity/eval.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    trained = load_model(args.model)
    torch.manual_seed(0)
    untrained = EmbeddingNet(trained.config).eval()
    seg = trained.config.segment_seconds
    systems = {"ours": (SegmentEmbedder.from_model(trained), False),
               "untrained": (SegmentEmbedder.from_model(untrained), False),
               "mfcc": (mfcc_embedder(seg, seg / 2), True)}
    for tagger in args.system:  # same segments; z-scored like MFCC (features are not unit-norm)
        systems[f"tagger:{tagger}"] = (tagger_embedder(tagger, seg, seg / 2), True)
    report: dict[str, object] = {"model": str(args.model), "seed": args.seed,
                                 "catalog": args.catalog,
                                 "excerpt_seconds": EXCERPT_SECONDS,
                                 "transforms": EVAL_AUGMENT.__dict__, "datasets": {}}
    for name in args.datasets.split(","):
        t0 = time.perf_counter()
        if name == "builtin":
            items = load_builtin(args.builtin, args.limit)
        elif name in LOADERS:
            if not args.data_root.exists():
                print(f"skipping {name}: {args.data_root} not found", file=sys.stderr)
                continue
            items = LOADERS[name](args.data_root, None)
            if args.catalog == "heldout":  # never an item a recipe model may train on
                items = [it for it in items if not trainable(name, it[0])]
            items = items[:args.limit] if args.limit else items
        else:
            raise SystemExit(f"unknown dataset {name!r}")
        queries = make_queries(items, args.n_queries, args.seed)
        indexes = {s: SystemIndex(e, items, z) for s, (e, z) in systems.items()}
        rows = {s: ix.evaluate(queries) for s, ix in indexes.items()}
        n_groups = len({g for _, _, g in items})
        report["datasets"][name] = {"items": len(items), "groups": n_groups,
                                    "queries": len(queries), "systems": rows,
                                    "seconds": round(time.perf_counter() - t0, 1)}
        print(f"\n{name}: {len(items)} items, {n_groups} relevance groups, "
              f"{len(queries)} queries")
        print("| system | hit@1 | hit@10 | mAP | src@1 | src@10 |\n|---|---|---|---|---|---|")
        for s, m in rows.items():
            print(f"| {s} | " + " | ".join(f"{m[k]:.3f}" for k in
                                            ("hit@1", "hit@10", "mAP", "src@1", "src@10"))
                  + " |", flush=True)
        if args.per_transform and name in args.per_transform.split(","):
            per = {}
            print("\nhit@1 / hit@10 with one transformation at a time\n| transformation | "
                  + " | ".join(systems) + " |\n|---|" + "---|" * len(systems))
            for t in SINGLE:
                qs = single_transform_queries(items, args.per_transform_queries, args.seed, t)
                per[t] = {s: ix.evaluate(qs) for s, ix in indexes.items()}
                cells = [f"{per[t][s]['hit@1']:.2f} / {per[t][s]['hit@10']:.2f}"
                         for s in systems]
                print(f"| {t} | " + " | ".join(cells) + " |", flush=True)
            report["datasets"][name]["per_transform"] = per
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(args.out)
    print(f"\nreport -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
