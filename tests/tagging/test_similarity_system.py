"""`evaluate.py --system tagger:NAME`: tagger features as a similarity system."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig
from audiofcn.io import resample
from audiofcn.models.fcn import FCN, FCNConfig

REPO = Path(__file__).resolve().parents[2]


def _evaluate_module():  # noqa: ANN202 - the loaded recipe module
    sys.path.insert(0, str(REPO / "recipes/similarity"))
    spec = importlib.util.spec_from_file_location(
        "sim_evaluate", REPO / "recipes/similarity/evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["sim_evaluate"] = mod
    spec.loader.exec_module(mod)
    return mod


def _tiny_tagger(path: Path) -> FCN:
    torch.manual_seed(0)
    cfg = FCNConfig(labels=("a", "b"), frontend=LogMelConfig(mel=MelConfig(
        8000, STFTConfig(256, 128), 32)), input_length=4000, channels=(8, 16, 16),
        pools=((2, 2), (2, 2), (2, 4)))
    model = FCN(cfg).eval()
    model.save_pretrained(path)
    return model


def test_tagger_system_tiles_segments_to_the_window(tmp_path: Path) -> None:
    """Each 16 kHz segment is resampled to the tagger's rate, repeated to fill its window and
    embedded with the tagger's penultimate features; different audio gives different rows."""
    ev = _evaluate_module()
    model = _tiny_tagger(tmp_path / "tiny.safetensors")
    emb = ev.tagger_embedder(str(tmp_path / "tiny.safetensors"), 0.2, 0.1)
    g = torch.Generator().manual_seed(1)
    audio = torch.randn(int(0.5 * ev.SR), generator=g) * torch.linspace(0.01, 1.0, 8000)
    segs = emb.embed_audio(audio)
    assert segs.embeddings.shape == (4, 16)  # starts 0, .1, .2, .3 s
    seg = resample(audio[:int(0.2 * ev.SR)], ev.SR, 8000)  # 1600 samples at 8 kHz
    window = torch.cat([seg, seg, seg])[:4000]
    with torch.inference_mode():
        want = model.embed(window[None]).numpy()[0]
    np.testing.assert_allclose(segs.embeddings[0], want, rtol=1e-4, atol=1e-5)
    assert not np.allclose(segs.embeddings[0], segs.embeddings[-1])


def test_system_option_rejects_unknown_kinds() -> None:
    ev = _evaluate_module()
    assert ev.parse_system("tagger:msd50_crnn") == "msd50_crnn"
    for bad in ("msd50_crnn", "tagger:", "mfcc:x"):
        with pytest.raises(argparse.ArgumentTypeError):
            ev.parse_system(bad)
