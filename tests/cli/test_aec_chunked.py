"""``audiofcn aec`` processes files in chunks (bounded memory) with the same output as one pass
over the whole file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audiofcn.cli.aec import cancel
from audiofcn.cli.main import main
from audiofcn.io import load_audio, resample
from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig

TINY = EchoCancellerConfig(encoder_channels=(4, 8), bottleneck_channels=12, growth=6,
                           layers_per_block=2, num_blocks=1)


def _whole_file(model: EchoCanceller, mic: Path, ref: Path, stream: bool) -> np.ndarray:
    """The reference: every sample in memory at once."""
    m, file_sr = load_audio(mic)
    r, _ = load_audio(ref)
    sr = model.config.sample_rate
    out = cancel(model, resample(m, file_sr, sr)[0], resample(r, file_sr, sr)[0], stream=stream)
    return resample(out[None], sr, file_sr)[0, : m.shape[-1]].numpy()


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("file_sr", [16000, 22050])
def test_chunked_equals_whole_file(tmp_path: Path, stream: bool, file_sr: int) -> None:
    torch.manual_seed(0)
    model = EchoCanceller(TINY).eval()
    path = model.save_pretrained(tmp_path / "aec.safetensors")
    rng = np.random.default_rng(0)
    n = int(1.3 * file_sr) + 17
    ref = (0.1 * rng.standard_normal(n)).astype(np.float32)
    mic = (0.5 * np.roll(ref, 30) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    # a stereo microphone is downmixed, as in the whole-file path
    sf.write(tmp_path / "mic.wav", np.stack([mic, 0.5 * mic], 1), file_sr, subtype="FLOAT")
    sf.write(tmp_path / "ref.wav", ref, file_sr, subtype="FLOAT")
    args = ["aec", "--mic", str(tmp_path / "mic.wav"), "--ref", str(tmp_path / "ref.wav"),
            "--model", str(path), "-o", str(tmp_path / "out.wav"), "--chunk-seconds", "0.25"]
    assert main(args + (["--stream"] if stream else [])) == 0
    got, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    want = _whole_file(model, tmp_path / "mic.wav", tmp_path / "ref.wav", stream)
    assert sr == file_sr and got.shape == (n,)
    np.testing.assert_allclose(got, want, atol=2e-5)
