"""Shared helpers of the separation recipe: configs, data paths, stem loading, model building."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audiofcn.frontend import STFT, STFTConfig
from audiofcn.io import AudioRecord, load_audio, read_manifest
from audiofcn.models.separator import (
    FCNSeparator,
    FCNSeparatorConfig,
    PatchSeparator,
    PatchSeparatorConfig,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent


def default_data_root() -> Path:
    return Path(os.environ.get("AUDIOFCN_DATA_ROOT", REPO.parent / "shared" / "data"))


def load_config(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists() and (HERE / "configs" / f"{path}.json").exists():
        p = HERE / "configs" / f"{path}.json"
    return json.loads(p.read_text())


def load_pair(rec: AudioRecord, root: Path, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(voice, accompaniment)`` float32 1-D arrays at ``sr`` for one manifest record.

    MIR-1K records (``meta["layout"] == "mir1k"``) are stereo files, left = accompaniment,
    right = voice; rendered songs have a ``vocals`` stem and mixture = sum of stems.
    """
    if rec.meta.get("layout") == "mir1k":
        audio, _ = load_audio(rec.resolve(root), sr=sr, mono=False, expected_channels=2)
        return audio[1].numpy(), audio[0].numpy()
    mix, _ = load_audio(rec.resolve(root), sr=sr)
    if "vocals" in rec.stems:
        voice, _ = load_audio(Path(root) / rec.stems["vocals"], sr=sr)
    else:
        voice = torch.zeros_like(mix)
    return voice[0].numpy(), (mix - voice)[0].numpy()


def load_split(manifest: Path, split: str, sr: int,
               limit: int | None = None) -> list[tuple[AudioRecord, np.ndarray, np.ndarray]]:
    root = manifest.parent
    recs = read_manifest(manifest, split=split)[:limit]
    out = []
    for r in recs:
        root_r = Path(r.meta.get("root", root))
        v, a = load_pair(r, root_r, sr)
        out.append((r, v, a))
    return out


def build_model(cfg: dict[str, Any]) -> torch.nn.Module:
    kind = cfg["model"]
    stft = STFTConfig(**cfg.get("stft", {"n_fft": 1024, "hop_length": 256}))
    sr = cfg.get("sample_rate", 16000)
    extra = dict(cfg.get("model_config", {}))
    for k, v in list(extra.items()):
        if isinstance(v, list):
            extra[k] = tuple(v)
    if kind == "patch_cnn":
        return PatchSeparator(PatchSeparatorConfig(sample_rate=sr, stft=stft, **extra))
    if kind == "fcn":
        return FCNSeparator(FCNSeparatorConfig(sample_rate=sr, stft=stft, **extra))
    if kind == "openunmix":
        from audiofcn.separation.peers import OpenUnmixPeer, OpenUnmixPeerConfig

        return OpenUnmixPeer(OpenUnmixPeerConfig(sample_rate=sr, stft=stft, **extra))
    raise ValueError(f"unknown model kind {kind!r} (patch_cnn, fcn, openunmix)")


def mixture_statistics(pairs: list[tuple[np.ndarray, np.ndarray]],
                       stft_cfg: STFTConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and std of mixture magnitudes (Open-Unmix's input standardisation)."""
    stft = STFT(stft_cfg)
    total, sq, n = 0.0, 0.0, 0
    for v, a in pairs:
        mag = stft(torch.from_numpy(v + a)).abs()
        total = total + mag.sum(-1)
        sq = sq + mag.square().sum(-1)
        n += mag.shape[-1]
    mean = total / n
    return mean, (sq / n - mean.square()).clamp_min(0).sqrt()
