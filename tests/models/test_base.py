"""The shared model base: config round trips and checkpoint errors."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
import torch

from audiofcn.frontend import LogMelConfig
from audiofcn.models.base import CheckpointError, PretrainedModel, config_from_dict


@dataclass
class ToyConfig:
    pools: tuple[tuple[int, int], ...] = ((2, 4), (3, 5))
    frontend: LogMelConfig = field(default_factory=LogMelConfig)
    width: int | None = 4


class Toy(PretrainedModel):
    model_name = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        self.linear = torch.nn.Linear(config.width or 1, 2)


def test_config_survives_json() -> None:
    cfg = ToyConfig(pools=((1, 2),), width=None)
    back = config_from_dict(ToyConfig, json.loads(json.dumps(asdict(cfg))))
    assert back == cfg and isinstance(back.pools[0], tuple)


def test_save_load_and_errors(tmp_path: Path) -> None:
    model = Toy(ToyConfig())
    path = model.save_pretrained(tmp_path / "toy.safetensors")
    again = Toy.from_pretrained(path)
    assert again.config == model.config
    assert torch.equal(again.linear.weight, model.linear.weight)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Toy.from_pretrained(tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="junk.safetensors"):
        Toy.from_pretrained(tmp_path / "junk.safetensors")
