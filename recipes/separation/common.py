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


def _load_stem(root: Path, ref: str, sr: int) -> torch.Tensor:
    """A stem reference ``path`` or ``path#k`` (channel ``k`` of a multichannel file) -> (T,)."""
    path, _, channel = ref.partition("#")
    if channel:
        audio, _ = load_audio(Path(root) / path, sr=sr, mono=False)
        return audio[int(channel)]
    return load_audio(Path(root) / path, sr=sr)[0][0]


def load_pair(rec: AudioRecord, root: Path, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """``(voice, accompaniment)`` float32 1-D arrays at ``sr`` for one manifest record.

    * ``prepare.py mir1k`` records (``meta["layout"] == "mir1k"``): stereo files, left =
      accompaniment, right = voice (mixture = left + right);
    * ``audiofcn data manifest`` records (MIR-1K, iKala, MUSDB18): ``stems["vocals"]`` and
      optionally ``stems["accompaniment"]`` (``file.wav#k`` = channel k); without an
      accompaniment stem it is ``mixture − vocals``;
    * rendered songs (``prepare.py synth``): a ``vocals`` stem, accompaniment = mix − vocals.
    """
    if rec.meta.get("layout") == "mir1k":
        audio, _ = load_audio(rec.resolve(root), sr=sr, mono=False, expected_channels=2)
        return audio[1].numpy(), audio[0].numpy()
    if "vocals" in rec.stems:
        voice = _load_stem(root, rec.stems["vocals"], sr)
        if "accompaniment" in rec.stems:
            acc = _load_stem(root, rec.stems["accompaniment"], sr)
            n = min(len(voice), len(acc))
            return voice[:n].numpy(), acc[:n].numpy()
    mix = load_audio(rec.resolve(root), sr=sr)[0][0]
    if "vocals" not in rec.stems:
        voice = torch.zeros_like(mix)
    n = min(len(voice), len(mix))
    return voice[:n].numpy(), (mix[:n] - voice[:n]).numpy()


def load_split(manifest: Path, split: str, sr: int, limit: int | None = None,
               audio_root: Path | None = None
               ) -> list[tuple[AudioRecord, np.ndarray, np.ndarray]]:
    """Records of one split with their ``(voice, accompaniment)``; paths are relative to
    ``audio_root`` (default: the manifest's folder)."""
    root = Path(audio_root) if audio_root else manifest.parent
    recs = read_manifest(manifest, split=split)[:limit]
    return [(r, *load_pair(r, root, sr)) for r in recs]


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
