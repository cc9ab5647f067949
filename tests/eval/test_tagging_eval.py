import json

import numpy as np
import pytest
import torch

from audiofcn.eval.tagging import (
    classification_scores,
    evaluate_tagger,
    plot_per_tag_auc,
    tagging_scores,
    write_report,
)
from audiofcn.frontend import LogMelConfig, MelConfig, STFTConfig
from audiofcn.io import AudioRecord, save_audio
from audiofcn.models.fcn import FCN, FCNConfig


def test_scores_match_sklearn_and_skip_single_class_tags():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (40, 3))
    y[:, 2] = 1  # every track has tag c: AUC undefined
    s = rng.random((40, 3)) + 0.5 * y
    rep = tagging_scores(y, s, ["a", "b", "c"])
    assert rep["skipped_tags"] == ["c"] and rep["n_evaluated_tags"] == 2
    roc = np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(2)])
    pr = np.mean([average_precision_score(y[:, j], s[:, j]) for j in range(2)])
    assert rep["roc_auc_macro"] == pytest.approx(roc)
    assert rep["pr_auc_macro"] == pytest.approx(pr)
    assert set(rep["per_tag"]) == {"a", "b"}
    perfect = tagging_scores(y[:, :2], y[:, :2].astype(float), ["a", "b"])
    assert perfect["roc_auc_macro"] == 1.0 and perfect["pr_auc_macro"] == 1.0
    with pytest.raises(ValueError):
        tagging_scores(y, s[:, :2], ["a", "b", "c"])
    assert tagging_scores(np.ones((3, 1)), np.ones((3, 1)), ["x"])["roc_auc_macro"] is None


def test_classification_scores():
    rep = classification_scores(np.array([0, 1, 2, 1]),
                                np.array([[.8, .1, .1], [.1, .8, .1], [.5, .3, .2],
                                          [.2, .7, .1]]), ["x", "y", "z"])
    assert rep["accuracy"] == 0.75
    assert rep["confusion"][2][0] == 1 and sum(map(sum, rep["confusion"])) == 4


def test_track_level_evaluation_averages_chunks(tmp_path):
    sr = 8000
    labels = ("a", "b")
    cfg = FCNConfig(labels=labels, frontend=LogMelConfig(mel=MelConfig(sr, STFTConfig(256, 128),
                                                                       16)),
                    input_length=2000, channels=(4, 4), pools=((2, 2), (2, 2)))
    model = FCN(cfg).eval()
    recs = []
    for i in range(6):
        # tracks of 2.6 chunks: three chunks, the last zero-padded
        save_audio(tmp_path / f"t{i}.wav", torch.randn(5200) * 0.1, sr)
        recs.append(AudioRecord(f"t{i}.wav", 0.65, sr, split="test",
                                tags=["a"] if i % 2 else ["a", "b"]))
    rep = evaluate_tagger(model, recs, tmp_path, progress=False)
    assert rep["n_tracks"] == 6 and rep["skipped_tags"] == ["a"]
    assert 0.0 <= rep["roc_auc_macro"] <= 1.0
    from audiofcn.tagging import predict_chunks

    audio = torch.from_numpy(__import__("soundfile").read(tmp_path / "t0.wav")[0]).float()
    chunks = predict_chunks(model, audio)
    assert chunks.shape == (3, 2)
    path = write_report(rep, tmp_path / "r" / "report.json")
    assert json.loads(path.read_text())["n_tracks"] == 6
    png = plot_per_tag_auc(rep, tmp_path / "r" / "report.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention_plot(tmp_path):
    from audiofcn.eval.tagging import plot_attention
    from audiofcn.models.attention_tagger import SelfAttentionTagger, SelfAttentionTaggerConfig

    cfg = SelfAttentionTaggerConfig(labels=("a", "b"), frontend=LogMelConfig(
        mel=MelConfig(8000, STFTConfig(256, 128), 16)), input_length=4000,
        conv_channels=(4, 4), conv_pools=((2, 2), (2, 2)), d_model=8, n_heads=2, ff_dim=16)
    png = plot_attention(SelfAttentionTagger(cfg), torch.randn(6000) * 0.1,
                         tmp_path / "att.png", title="x")
    assert png.read_bytes()[:4] == b"\x89PNG"
