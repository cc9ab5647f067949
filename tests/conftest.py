"""Shared fixtures: tiny audio the tests make themselves (no files from outside the repo)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

torch.set_num_threads(1)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(autouse=True)
def _forget_recipe_modules() -> Iterator[None]:
    """Recipes are scripts that import their folder's helpers by bare name (``common``); drop
    what a test imported from recipes/ and restore sys.path, so two recipes' same-named helpers
    never meet in one test process."""
    saved_path = list(sys.path)
    yield
    sys.path[:] = saved_path
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None) or ""
        if file.startswith(str(RECIPES)):
            del sys.modules[name]


@pytest.fixture
def tone() -> tuple[np.ndarray, int]:
    """0.5 s of a 440 Hz tone plus a little noise at 16 kHz, float32 (time,)."""
    sr = 16000
    t = np.arange(sr // 2) / sr
    rng = np.random.default_rng(0)
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32), sr


@pytest.fixture
def wav_file(tmp_path: Path, tone: tuple[np.ndarray, int]) -> Path:
    x, sr = tone
    path = tmp_path / "tone.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    return path


@pytest.fixture
def run_torchrun(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run a script text under ``torchrun --standalone --nproc_per_node=2`` (gloo on CPU, one
    thread per rank) with ``tmp_path / "run"`` as its argument; fails the test on a non-zero
    exit, showing the ranks' stderr."""

    def run(script_text: str) -> subprocess.CompletedProcess[str]:
        script = tmp_path / "ddp_script.py"
        script.write_text(script_text)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             "--nproc_per_node=2", str(script), str(tmp_path / "run")],
            capture_output=True, text=True, timeout=240, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    return run
