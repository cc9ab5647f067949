"""Source pools for on-the-fly training mixtures (``"mix"`` in a train config).

A config's ``"mix"`` section::

    "mix": {
      "sources": [
        {"manifest": "runs/separation/data/mir1k/manifest.jsonl", "split": "train",
         "group": "mir1k"},
        {"manifest": "runs/separation/data/extra/manifest.jsonl", "split": "train"}
      ],
      "voice_weights": {"mir1k": 0.6, "speech": 0.25, "singing": 0.15},
      "accompaniment_weights": {"mir1k": 0.5, "synth": 0.3, "instruments": 0.2},
      "pair_groups": ["mir1k"],
      "config": {"p_pair": 0.3, "semitones": 3.0}
    }

Each record's group is the source's ``"group"`` or the record's own ``group`` field; its role is
``meta["role"]``: ``"voice"`` or ``"accompaniment"`` (a mono recording of one kind, e.g. written by
``prepare.py extra``) or, by default, ``"pair"`` (a song with both stems, loaded by
:func:`common.load_pair`: its voice joins the voice pool and its accompaniment the accompaniment
pool of its group; groups in ``pair_groups`` are also mixed as recorded, ``p_pair`` of the time).
``config`` holds :class:`audiofcn.separation.mixing.MixConfig` fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, load_pair

from audiofcn.io import load_audio, read_manifest
from audiofcn.separation.mixing import MixConfig, RandomMixSegments, SourcePool


def load_pools(spec: dict[str, Any], sr: int) -> tuple[dict[str, list[np.ndarray]],
                                                        dict[str, list[np.ndarray]],
                                                        dict[str, list[tuple[np.ndarray,
                                                                             np.ndarray]]]]:
    """``(voices, accompaniments, pairs)`` by group, from the sources of a ``"mix"`` section."""
    voices: dict[str, list[np.ndarray]] = {}
    accs: dict[str, list[np.ndarray]] = {}
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for src in spec["sources"]:
        manifest = Path(src["manifest"])
        manifest = manifest if manifest.is_absolute() else REPO / manifest
        root = Path(src.get("audio_root", manifest.parent))
        for rec in read_manifest(manifest, split=src.get("split", "train")):
            group = src.get("group") or rec.group or "default"
            role = rec.meta.get("role", "pair")
            if role == "pair":
                v, a = load_pair(rec, root, sr)
                voices.setdefault(group, []).append(v)
                accs.setdefault(group, []).append(a)
                pairs.setdefault(group, []).append((v, a))
            elif role in ("voice", "accompaniment"):
                x = load_audio(rec.resolve(root), sr=sr)[0][0].numpy()
                (voices if role == "voice" else accs).setdefault(group, []).append(x)
            else:
                raise ValueError(f"{rec.path}: unknown role {role!r} (pair, voice, accompaniment)")
    return voices, accs, pairs


def build_mix_dataset(spec: dict[str, Any], sr: int, segment: int,
                      length: int) -> tuple[RandomMixSegments, int]:
    """The training dataset of a ``"mix"`` section and the number of source recordings."""
    voices, accs, pairs = load_pools(spec, sr)
    vw, aw = spec["voice_weights"], spec["accompaniment_weights"]
    voices = {g: s for g, s in voices.items() if vw.get(g, 0) > 0}
    accs = {g: s for g, s in accs.items() if aw.get(g, 0) > 0}
    pair_list = [p for g in spec.get("pair_groups", []) for p in pairs.get(g, [])]
    cfg = MixConfig(segment=segment, sample_rate=sr,
                    **{k: tuple(v) if isinstance(v, list) else v
                       for k, v in spec.get("config", {}).items()})
    n = sum(len(s) for s in voices.values()) + sum(len(s) for s in accs.values())
    return RandomMixSegments(SourcePool(voices, vw), SourcePool(accs, aw), pair_list, cfg,
                             length), n


def sample_pairs(ds: RandomMixSegments, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` fixed mixtures of ``ds``'s pools as ``(voice, accompaniment)`` arrays."""
    fixed = RandomMixSegments(ds.voices, ds.accompaniments, ds.pairs, ds.cfg, n, fixed=True)
    return [(x[0].numpy(), x[1].numpy()) for x in (fixed[i] for i in range(n))]
