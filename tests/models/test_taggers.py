import importlib.util
from pathlib import Path

import pytest
import torch

from audiofcn.models import load_model
from audiofcn.models.attention_tagger import SelfAttentionTagger, SelfAttentionTaggerConfig
from audiofcn.models.fcn import FCN, FCN_VARIANTS, FCNConfig
from audiofcn.models.rawwave import RawWaveCNN, RawWaveCNNConfig
from audiofcn.models.samplecnn import SampleCNN, SampleCNNConfig

_spec = importlib.util.spec_from_file_location(
    "tagger_fixtures", Path(__file__).with_name("tagger_fixtures.py"))
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)

NAMES = list(fx.tiny_models())


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_for_several_lengths(name):
    model = fx.tiny_models()[name].eval()
    n = model.config.input_length
    for length in (n // 3, n, int(2.5 * n) + 17):
        for batch in (1, 3):
            out = model(torch.randn(batch, length))
            assert out.shape == (batch, 2), (length, batch)
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_first_layer(name):
    model = fx.tiny_models()[name].train()
    x, y = fx.toy_batch(4, model.config.input_length)
    torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
    first = next(p for n, p in model.named_parameters() if p.dim() > 1)
    assert first.grad is not None and first.grad.abs().sum() > 0
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip(name, tmp_path):
    model = fx.tiny_models()[name].eval()
    x = torch.randn(2, model.config.input_length)
    path = model.save_pretrained(tmp_path / "m.safetensors")
    for loaded in (load_model(path), type(model).from_pretrained(path),
                   type(model).from_pretrained(model.serialize())):
        assert loaded.config == model.config
        assert torch.equal(loaded.eval()(x), model(x))


def test_from_pretrained_rejects_other_model(tmp_path):
    from audiofcn.models.base import CheckpointError

    path = fx.tiny_models()["fcn"].save_pretrained(tmp_path / "fcn.safetensors")
    with pytest.raises(CheckpointError, match="not 'samplecnn'"):
        SampleCNN.from_pretrained(path)


@pytest.mark.parametrize("variant,paper_millions", [
    ("m3", 0.2), ("m5", 0.5), ("m11", 1.8), ("m18", 3.7), ("m34res", 4.0)])
def test_mseries_parameter_counts_match_paper(variant, paper_millions):
    # Dai et al. (2017) Table 1 gives the counts to one decimal (10 classes, UrbanSound8K).
    n = RawWaveCNN(RawWaveCNNConfig.variant(variant)).num_parameters()
    assert abs(n / 1e6 - paper_millions) <= 0.06 + 0.02 * paper_millions, n


def test_mseries_first_layer_and_output_frames():
    m = RawWaveCNN(RawWaveCNNConfig.variant("m18")).eval()
    conv = m.first[0]
    assert conv.kernel_size == (80,) and conv.stride == (4,)
    # 32,000 samples -> 8,000 -> four max-pools of 4 -> 31 frames before global averaging
    assert m.stages(m.first(torch.zeros(1, 1, 32000))).shape == (1, 512, 31)
    assert RawWaveCNN(RawWaveCNNConfig.variant("m5", labels=("a", "b", "c"))
                      ).classifier.out_features == 3
    with pytest.raises(ValueError):
        RawWaveCNNConfig.variant("m7")


def test_samplecnn_3_9_reduces_59049_samples_to_one_frame():
    m = SampleCNN(SampleCNNConfig()).eval()
    assert m.min_length == 59049 and len(m.blocks) == 9
    h = m.stem(torch.zeros(1, 1, 59049))
    for block in m.blocks:
        h = block(h)
    assert h.shape == (1, 512, 1)
    # Lee et al.'s plan: conv weights only (stem 1->128, nine blocks, conv k1 512, FC 50)
    c = (128, *SampleCNNConfig().channels)
    conv = 3 * 128 + sum(3 * a * b for a, b in zip(c[:-1], c[1:], strict=False)) + 512 * 512
    bn_bias = 2 * (128 + sum(c[1:]) + 512)
    assert m.num_parameters() == conv + bn_bias + 512 * 50 + 50


def test_samplecnn_se_variants_add_excitation():
    basic = SampleCNN(SampleCNNConfig()).num_parameters()
    se = SampleCNN(SampleCNNConfig(block="se")).num_parameters()
    rese = SampleCNN(SampleCNNConfig(block="rese")).num_parameters()
    # α = 16: each SE adds 2·16·C² weights (C = block channels), the ReSE blocks a second conv
    c = SampleCNNConfig().channels
    assert se - basic == sum(2 * 16 * k * k + 16 * k + k for k in c)
    assert rese > se


def test_fcn4_parameter_count_is_the_plans():
    # Choi et al.'s FCN-4 plan (FACTS.md: 3x3 conv-BN layers, pools (2,4),(4,5),(3,8),(4,8);
    # widths 128-384-768-2048): conv weights + BN, input BN, linear 2048 -> 50 tags.
    c = (1, 128, 384, 768, 2048)
    plan = 2 + sum(9 * a * b + 2 * b for a, b in zip(c[:-1], c[1:], strict=True)) + 2048 * 50 + 50
    assert FCN(FCNConfig.variant("fcn4")).num_parameters() == plan == 17_362_612


def test_attention_tagger_encoder_count_is_won_et_al():
    # Won et al.'s encoder: 2 BERT-style layers, hidden 256, 8 heads, feed-forward 1024
    # (their public code); per layer 4 projections d×d+d, FF 2·d·ff+ff+d, 2 LayerNorms.
    cfg = SelfAttentionTaggerConfig()
    d, ff = cfg.d_model, cfg.ff_dim
    assert (cfg.n_layers, cfg.n_heads, d, ff) == (2, 8, 256, 1024)
    per_layer = 4 * (d * d + d) + 2 * d * ff + ff + d + 4 * d
    m = SelfAttentionTagger(cfg)
    assert sum(p.numel() for p in m.layers.parameters()) == 2 * per_layer == 1_579_520


@pytest.mark.parametrize("variant", sorted(FCN_VARIANTS))
def test_fcn_variants_pool_input_to_one_by_one(variant):
    cfg = FCNConfig.variant(variant)
    f = t = 1
    for pf, pt in cfg.pools:
        f, t = f * pf, t * pt
    frames = 1 + cfg.input_length // cfg.frontend.mel.stft.hop_length
    assert frames == 1366  # 29.1 s at 12 kHz, hop 256
    assert cfg.frontend.mel.n_mels // f == 1 and frames // t == 1


def test_fcn4_plan_is_the_papers():
    cfg = FCNConfig.variant("fcn4")
    assert cfg.pools == ((2, 4), (4, 5), (3, 8), (4, 8)) and len(cfg.channels) == 4
    assert len(FCNConfig.variant("fcn7").channels) == 7


def test_attention_tagger_any_batch_and_maps():
    m = fx.tiny_models()["attention"].eval()
    assert isinstance(m, SelfAttentionTagger)
    for b in (1, 2, 5):
        assert m(torch.randn(b, 6000)).shape == (b, 2)
    maps, times = m.attention_maps(torch.randn(3, 8000))
    assert maps.shape[:3] == (3, 2, 2) and maps.shape[-1] == times.shape[0]
    assert (maps >= 0).all() and (maps.sum(-1) <= 1 + 1e-5).all()
    assert times[1] == pytest.approx(m.seconds_per_token)


def test_attention_tagger_paper_shape():
    cfg = SelfAttentionTaggerConfig()
    assert cfg.n_layers == 2 and cfg.n_heads == 8
    with pytest.raises(ValueError):
        SelfAttentionTagger(SelfAttentionTaggerConfig(conv_channels=(8,), conv_pools=()))


@pytest.mark.parametrize("se", ["cse", "sse", "scse"])
def test_fcn_roy_se_blocks(se):
    from audiofcn.nn.se import ChannelSE, ChannelSpatialSE2d, SpatialSE2d

    m = FCN(FCNConfig.variant("fcn5-small", se=se))
    kind = {"cse": ChannelSE, "sse": SpatialSE2d, "scse": ChannelSpatialSE2d}[se]
    assert sum(isinstance(x, kind) for x in m.layers) == 5
    assert m.num_parameters() > FCN(FCNConfig.variant("fcn5-small")).num_parameters()


def test_unknown_options_fail_clearly():
    with pytest.raises(ValueError, match="unknown FCN variant"):
        FCNConfig.variant("fcn9")
    with pytest.raises(ValueError, match="unknown block"):
        SampleCNN(SampleCNNConfig(block="dense"))
    with pytest.raises(ValueError):
        FCN(FCNConfig(channels=(8,), pools=()))
    with pytest.raises(ValueError, match="unknown se"):
        FCN(FCNConfig(se="ese"))
