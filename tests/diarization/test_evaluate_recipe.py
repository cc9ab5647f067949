from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from audiofcn.diarization import Segment

pytest.importorskip("pyannote.metrics")
ROOT = Path(__file__).resolve().parents[2]


def load_evaluate():
    spec = importlib.util.spec_from_file_location("diar_evaluate",
                                                  ROOT / "recipes/diarization/evaluate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_der_scoring_conventions() -> None:
    ev = load_evaluate()
    ref = [Segment(0.0, 4.0, "a"), Segment(5.0, 9.0, "b")]
    item = ("conv", np.zeros(10 * 16000, np.float32), ref)
    perfect = ev.score([item], [[Segment(0.0, 4.0, "x"), Segment(5.0, 9.0, "y")]], [2])
    assert perfect["der"] == pytest.approx(0.0) and perfect["exact_count"] == 1.0
    # a 0.2-s boundary shift sits inside the +-0.25 s collar
    shifted = ev.score([item], [[Segment(0.2, 4.0, "x"), Segment(5.0, 9.0, "y")]], [2])
    assert shifted["der"] == pytest.approx(0.0)
    # one label for both speakers: half the speech is confused
    merged = ev.score([item], [[Segment(0.0, 4.0, "x"), Segment(5.0, 9.0, "x")]], [1])
    assert merged["confusion"] == pytest.approx(0.5, abs=0.07)
    assert merged["exact_count"] == 0.0
