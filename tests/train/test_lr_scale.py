import importlib.util
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from audiofcn.train import TrainConfig, Trainer
from audiofcn.train.classification import TaggingTask

_spec = importlib.util.spec_from_file_location(
    "tagger_fixtures", Path(__file__).parents[1] / "models" / "tagger_fixtures.py")
fx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fx)


def _trainer(tmp_path, lr_scale):
    torch.manual_seed(0)
    model = fx.tiny_models()["fcn"]
    data = TensorDataset(*fx.toy_batch(16, model.config.input_length, seed=1))
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), epochs=1, batch_size=8, lr=1e-2,
                      progress=False, device="cpu", lr_scale=lr_scale)
    return Trainer(model, TaggingTask(multi_label=True), data, None, cfg)


def test_lr_scale_sets_the_learning_rate_of_matching_parameters(tmp_path):
    first = next(n for n, _ in fx.tiny_models()["fcn"].named_parameters())
    key = first.rsplit(".", 1)[0] + "."  # the first layer's module prefix
    trainer = _trainer(tmp_path, {key: 0.0})
    params = dict(trainer.model.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    trainer.fit()
    frozen = [n for n in params if key in n]
    moved = [n for n in params if key not in n and not torch.equal(params[n], before[n])]
    assert frozen and all(torch.equal(params[n], before[n]) for n in frozen)
    assert moved, "the other parameters should train at the base learning rate"
    lrs = sorted(g["initial_lr"] for g in trainer.optimizer.param_groups)
    assert lrs == [0.0, 1e-2]


def test_lr_scale_that_matches_nothing_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="match no parameter"):
        _trainer(tmp_path, {"no_such_layer.": 10.0})
    with pytest.raises(ValueError, match="no_such_layer"):  # even next to a key that matches
        _trainer(tmp_path, {"no_such_layer.": 1.0, ".": 2.0})
