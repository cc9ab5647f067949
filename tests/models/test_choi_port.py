"""The ported MSD-50 taggers (keunwoochoi/music-auto_tagging-keras, MIT).

Always: the shipped weights against the converter's fixture (one example clip's log-mel and
both models' outputs on it) and the README's reference top-10 for that clip. With
``AUDIOFCN_CHOI_ROOT`` pointing at a copy of the repository: the full conversion and
reference comparison (``recipes/tagging/convert_choi.py``).
"""

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from audiofcn.frontend import LogMelFrontend, choi_keras_logmel
from audiofcn.models.crnn import CRNN, CRNNConfig, KerasGRU, hard_sigmoid
from audiofcn.tagging import load_tagger, shipped_taggers
from audiofcn.tagging.keras_port import MSD50_TAGS

FIXTURE = Path(__file__).with_name("fixtures") / "choi_msd50.safetensors"
REPO = Path(__file__).resolve().parents[2]
# README "Result" (theano, MusicTaggerCRNN), data/bensound-cute.mp3.
README_CUTE = [("jazz", 0.444), ("instrumental", 0.151), ("folk", 0.103), ("Hip-Hop", 0.103),
               ("ambient", 0.077), ("guitar", 0.068), ("rock", 0.058), ("acoustic", 0.054),
               ("experimental", 0.051), ("electronic", 0.042)]


def _fixture() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE))


def test_fixture_is_small():
    assert FIXTURE.stat().st_size < 500 * 1024


@torch.inference_mode()
def test_shipped_crnn_reproduces_readme_reference_and_fixture():
    fx = _fixture()
    model = load_tagger("msd50_crnn")
    assert model.config.labels == MSD50_TAGS
    probs = torch.sigmoid(model.classify_logmel(fx["logmel"].float()))[0]
    torch.testing.assert_close(probs, fx["crnn_probs"], atol=1e-5, rtol=0)
    top10 = [MSD50_TAGS[i] for i in probs.argsort(descending=True)[:10]]
    assert set(top10) == {t for t, _ in README_CUTE}
    for tag, ref in README_CUTE:
        assert abs(float(probs[MSD50_TAGS.index(tag)]) - ref) < 0.01, tag


@torch.inference_mode()
def test_shipped_fcn_matches_fixture():
    fx = _fixture()
    model = load_tagger("msd50_fcn")
    probs = torch.sigmoid(model.classify_logmel(fx["logmel"].float()))[0]
    torch.testing.assert_close(probs, fx["fcn_probs"], atol=1e-5, rtol=0)


def test_shipped_models_take_audio_and_have_the_published_sizes():
    crnn = load_tagger("msd50_crnn")
    assert crnn.num_parameters() == 396_786  # the README's count for MusicTaggerCRNN
    fcn = load_tagger("msd50_fcn")
    assert fcn.num_parameters() == 865_950 - 736  # README count less the folded conv biases
    x = torch.randn(1, crnn.config.input_length) * 0.1
    with torch.inference_mode():
        assert crnn(x).shape == (1, 50) and fcn(x).shape == (1, 50)
        assert crnn.embed(x).shape == (1, 32) and fcn.embed(x).shape == (1, 256)
    with pytest.raises(ValueError, match="exactly 1366 frames"):
        crnn(x[:, :-1000])
    assert "msd50_crnn" in shipped_taggers() and "fcn_synth" in shipped_taggers()


def test_choi_frontend_is_old_librosa_logamplitude_of_squared_mel():
    librosa = pytest.importorskip("librosa")
    y = (np.random.default_rng(0).standard_normal(12000 * 3) * 0.1).astype(np.float32)
    y[:6000] *= 1e-4  # a quiet part, so the 80 dB floor is exercised
    mel = librosa.feature.melspectrogram(y=y, sr=12000, n_fft=512, hop_length=256, n_mels=96,
                                         pad_mode="reflect")
    ref = librosa.power_to_db(mel.astype(np.float64) ** 2, ref=1.0, amin=1e-10, top_db=80.0)
    ours = LogMelFrontend(choi_keras_logmel())(torch.from_numpy(y)).numpy()
    assert ours.shape == ref.shape == (96, 1 + len(y) // 256)
    assert np.abs(ours - ref).max() < 0.01


def test_keras_gru_formula():
    torch.manual_seed(0)
    gru = KerasGRU(3, 2)
    x = torch.randn(1, 2, 3)
    n = 2
    h = torch.zeros(1, n)
    for t in range(2):  # Keras 1: reset gate applied to the state before the matmul
        xw = x[:, t] @ gru.W + gru.b
        z = hard_sigmoid(xw[:, :n] + h @ gru.U[:, :n])
        r = hard_sigmoid(xw[:, n:2 * n] + h @ gru.U[:, n:2 * n])
        hh = torch.tanh(xw[:, 2 * n:] + (r * h) @ gru.U[:, 2 * n:])
        h = z * h + (1 - z) * hh
    torch.testing.assert_close(gru(x)[:, -1], h)
    assert float(hard_sigmoid(torch.tensor(3.0))) == 1.0
    assert float(hard_sigmoid(torch.tensor(0.5))) == pytest.approx(0.6)


def test_keras_h5_table_checks(tmp_path):
    h5py = pytest.importorskip("h5py")
    from audiofcn.tagging.keras_port import apply_table, crnn_table, read_keras_h5

    cfg = CRNNConfig(labels=("a", "b"), input_length=2560, time_pad=1, channels=(2, 3),
                     pools=((2, 2), (3, 3)), gru_hidden=2, gru_layers=1)
    ref = CRNN(cfg).eval()
    sd = ref.state_dict()
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:  # a Keras-1 style file (TensorFlow names: "_1:0")
        layers = {"bn_0_freq": [("gamma", sd["input_norm.weight"]),
                                ("running_std", sd["input_norm.running_var"] + 1.5)],
                  "conv1": [("W", sd["layers.0.0.weight"])], "gru1": [("W_z", sd["grus.0.W"])]}
        f.attrs["layer_names"] = np.array([k.encode() for k in layers], dtype="S")
        for layer, ws in layers.items():
            g = f.create_group(layer)
            names = [f"{layer}_{w}_1:0".encode() for w, _ in ws]
            g.attrs["weight_names"] = np.array(names, dtype="S")
            for name, (_, value) in zip(names, ws, strict=True):
                g[name.decode()] = value.numpy()
    keras = read_keras_h5(path)
    assert set(keras) == {"bn_0_freq/gamma", "bn_0_freq/running_std", "conv1/W", "gru1/W_z"}
    with pytest.raises(ValueError, match="not in the file"):
        apply_table(CRNN(cfg), keras, crnn_table("tensorflow", n_layers=2, n_grus=1))
    with pytest.raises(ValueError, match="unmapped"):
        apply_table(CRNN(cfg), keras, crnn_table("tensorflow", n_layers=2, n_grus=1)[:1])
    # A full, consistent file round-trips; a Theano kernel is flipped.
    full = {"bn_0_freq/gamma": sd["input_norm.weight"], "bn_0_freq/beta": sd["input_norm.bias"],
            "bn_0_freq/running_mean": sd["input_norm.running_mean"],
            "bn_0_freq/running_std": sd["input_norm.running_var"] + 1.5,
            "output/W": sd["classifier.weight"].T, "output/b": sd["classifier.bias"]}
    for i in range(2):
        full[f"conv{i + 1}/W"] = sd[f"layers.{i}.0.weight"].flip(-1, -2)
        full[f"conv{i + 1}/b"] = sd[f"layers.{i}.0.bias"]
        for k, t in (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"),
                     ("running_std", "running_var")):
            full[f"bn{i + 1}/{k}"] = sd[f"layers.{i}.1.{t}"]
    for part, name in enumerate("zrh"):
        for w in ("W", "U", "b"):
            full[f"gru1/{w}_{name}"] = sd[f"grus.0.{w}"][..., 2 * part:2 * part + 2]
    full = {k: v.numpy() for k, v in full.items()}
    m = apply_table(CRNN(cfg), full, crnn_table("theano", n_layers=2, n_grus=1))
    torch.testing.assert_close(m.layers[0][0].weight, ref.layers[0][0].weight)  # flipped back
    torch.testing.assert_close(m.grus[0].U, ref.grus[0].U)
    torch.testing.assert_close(m.input_norm.running_var, ref.input_norm.running_var + 1.5)
    bad = dict(full, **{"conv2/W": full["conv2/W"][:, :1]})
    with pytest.raises(ValueError, match="shape"):
        apply_table(CRNN(cfg), bad, crnn_table("theano", n_layers=2, n_grus=1))


@pytest.mark.slow
def test_full_reference_comparison(tmp_path):
    root = os.environ.get("AUDIOFCN_CHOI_ROOT")
    if not root:
        pytest.skip("set AUDIOFCN_CHOI_ROOT to a copy of keunwoochoi/music-auto_tagging-keras "
                    "to run the full reference comparison")
    pytest.importorskip("h5py")
    spec = importlib.util.spec_from_file_location(
        "convert_choi", REPO / "recipes" / "tagging" / "convert_choi.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--root", root, "--out-dir", str(tmp_path)]) == 0
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["crnn_theano_vs_tensorflow_max_abs"] < 1e-5
    assert rep["fcn_theano_vs_tensorflow_max_abs"] < 1e-5
    assert rep["crnn_npy_vs_readme"]["all_top10_match"]
    assert rep["crnn_npy_vs_readme"]["max_abs_diff"] < 0.01
    # From the MP3s (decoder + resampler + frontend), aligned for the decoder delay.
    assert rep["crnn_mp3_aligned_vs_readme"]["all_top10_match"]
    assert rep["crnn_mp3_aligned_vs_readme"]["max_abs_diff"] < 0.03
    from safetensors.torch import load_file

    for name in ("crnn", "fcn"):
        new = load_file(str(tmp_path / f"tagger_msd50_{name}.safetensors"))
        old = load_file(str(shipped_taggers()[f"msd50_{name}"]))
        assert new.keys() == old.keys()
        assert all(torch.equal(new[k], old[k]) for k in new)


def test_crnn_eval_fast_path_equals_module_path_and_trains():
    torch.manual_seed(0)
    cfg = CRNNConfig(labels=("a", "b", "c"), input_length=12000 * 3, time_pad=5,
                     channels=(4, 6), pools=((4, 2), (3, 5)), gru_hidden=5)
    model = CRNN(cfg)
    x = torch.randn(2, cfg.input_length) * 0.1
    model.train()
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.ones(2, 3)).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.data.uniform_(-1, 1)  # negative scales too: folding must still be exact
    with torch.inference_mode():
        h = torch.randn(2, 1, 96, 300)
        torch.testing.assert_close(model._conv_layers(h), model.layers(h), atol=1e-5,
                                   rtol=1e-5)
