"""``audiofcn aec``: runs end to end, streaming == offline, clear errors, no partial output."""

import numpy as np
import pytest
import soundfile as sf

from audiofcn.cli.main import main
from audiofcn.models.echo import EchoCanceller, EchoCancellerConfig

TINY = EchoCancellerConfig(encoder_channels=(4, 8), bottleneck_channels=12, growth=6,
                           layers_per_block=2, num_blocks=1)


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    n = 8000
    ref = (0.1 * rng.standard_normal(n)).astype(np.float32)
    mic = (0.5 * np.roll(ref, 30) + 0.05 * rng.standard_normal(n)).astype(np.float32)
    sf.write(tmp_path / "mic.wav", mic, 16000)
    sf.write(tmp_path / "ref.wav", ref, 16000)
    model = tmp_path / "aec.safetensors"
    EchoCanceller(TINY).save_pretrained(model)
    return tmp_path, model


def test_aec_cli_offline_and_stream(files, capsys):
    d, model = files
    args = ["aec", "--mic", str(d / "mic.wav"), "--ref", str(d / "ref.wav"), "--model",
            str(model)]
    assert main([*args, "-o", str(d / "out.wav")]) == 0
    assert main([*args, "-o", str(d / "out_stream.wav"), "--stream"]) == 0
    a, sr = sf.read(d / "out.wav")
    b, _ = sf.read(d / "out_stream.wav")
    assert sr == 16000 and a.shape == (8000,)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert "latency 20 ms" in capsys.readouterr().out


def test_aec_cli_other_rate_is_resampled(files):
    d, model = files
    rng = np.random.default_rng(1)
    for name in ("mic8", "ref8"):
        sf.write(d / f"{name}.wav", (0.1 * rng.standard_normal(4000)).astype(np.float32), 8000)
    assert main(["aec", "--mic", str(d / "mic8.wav"), "--ref", str(d / "ref8.wav"),
                 "--model", str(model), "-o", str(d / "out8.wav")]) == 0
    out, sr = sf.read(d / "out8.wav")
    assert sr == 8000 and out.shape == (4000,)


@pytest.mark.parametrize("problem", ["rate", "length", "missing", "model"])
def test_aec_cli_errors(files, capsys, problem):
    d, model = files
    ref = d / "ref.wav"
    if problem == "rate":
        sf.write(d / "bad.wav", np.zeros(8000, np.float32), 8000)
        ref = d / "bad.wav"
    elif problem == "length":
        sf.write(d / "bad.wav", np.zeros(7000, np.float32), 16000)
        ref = d / "bad.wav"
    elif problem == "missing":
        ref = d / "nope.wav"
    if problem == "model":
        model = d / "no_model.safetensors"
    code = main(["aec", "--mic", str(d / "mic.wav"), "--ref", str(ref), "--model", str(model),
                 "-o", str(d / "out.wav")])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("audiofcn: error:") and len(err.strip().splitlines()) == 1
    expected = {"rate": "sample rate", "length": "same sample-aligned length",
                "missing": "nope.wav", "model": "checkpoint not found"}[problem]
    assert expected in err
    assert not (d / "out.wav").exists()


def test_demo_step_with_shipped_model(tmp_path):
    from audiofcn.cli.aec import aec_step, default_model_path
    from audiofcn.data.synth import SynthConfig, synth_catalog

    if not default_model_path().exists():
        pytest.skip("shipped echo canceller not present")
    synth_catalog(tmp_path / "cat", 2, seed=0, config=SynthConfig(duration=3.0),
                  with_stems=True)
    line = aec_step(tmp_path / "out", tmp_path / "cat")
    assert "ERLE" in line and "SI-SDR" in line
    for name in ("mic", "ref", "near", "clean"):
        assert (tmp_path / "out" / "aec" / f"{name}.wav").exists()
