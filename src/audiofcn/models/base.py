"""What every audiofcn model shares: a config dataclass, ``serialize()`` and ``from_pretrained``.

A checkpoint is one safetensors file: the weights, plus metadata holding the model name, its
config as JSON and the package versions, so a model is rebuilt from the file alone and no
pickle is ever read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from audiofcn.io.audio import atomic_output

T = TypeVar("T")
M = TypeVar("M", bound="PretrainedModel")


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable or for another model; the message names the file."""


def _as_tuple(value: list[Any]) -> tuple[Any, ...]:
    """JSON turns tuples (of tuples) into lists; turn them back, recursively."""
    return tuple(_as_tuple(v) if isinstance(v, list) else v for v in value)


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (possibly nested) config dataclass from ``dataclasses.asdict`` output."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        value, hint = data[f.name], hints[f.name]
        candidates = typing.get_args(hint) if isinstance(hint, types.UnionType) or \
            typing.get_origin(hint) is typing.Union else (hint,)
        for c in candidates:
            if dataclasses.is_dataclass(c) and isinstance(value, dict):
                value = config_from_dict(c, value)  # type: ignore[arg-type]
                break
            if typing.get_origin(c) is tuple and isinstance(value, list):
                value = _as_tuple(value)
                break
        kwargs[f.name] = value
    return cls(**kwargs)


class PretrainedModel(nn.Module):
    """Base class: subclasses set ``model_name`` and ``config_class`` and take ``config`` first."""

    model_name: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def serialize(self) -> dict[str, Any]:
        """``{"model", "config", "state", "versions"}``: everything needed to rebuild the model."""
        from audiofcn import __version__

        return {
            "model": self.model_name,
            "config": dataclasses.asdict(self.config),
            "state": {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
            "versions": {"audiofcn": __version__, "torch": torch.__version__},
        }

    def save_pretrained(self, path: str | os.PathLike[str],
                        extra: dict[str, Any] | None = None) -> Path:
        """Write weights + config as one safetensors file (atomically)."""
        from safetensors.torch import save_file

        blob = self.serialize()
        meta = {"model": blob["model"], "config": json.dumps(blob["config"]),
                "versions": json.dumps(blob["versions"])}
        if extra:
            meta["extra"] = json.dumps(extra)
        # safetensors refuses tensors that share memory (tied weights); clone to be safe.
        state = {k: v.clone() for k, v in blob["state"].items()}
        with atomic_output(path, suffix=".safetensors") as tmp:
            save_file(state, str(tmp), metadata=meta)
        return Path(path)

    @classmethod
    def from_pretrained(cls: type[M], source: str | os.PathLike[str] | dict[str, Any],
                        map_location: str | torch.device = "cpu") -> M:
        """Rebuild from a safetensors file written by :meth:`save_pretrained` or a
        :meth:`serialize` dict."""
        blob = source if isinstance(source, dict) else read_checkpoint(source)
        name = str(source) if not isinstance(source, dict) else "<dict>"
        if blob["model"] != cls.model_name:
            raise CheckpointError(f"{name}: checkpoint is a {blob['model']!r} model, "
                                  f"not {cls.model_name!r}")
        model = cls(config_from_dict(cls.config_class, blob["config"]))
        missing, unexpected = model.load_state_dict(blob["state"], strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{name}: weights do not match the config "
                                  f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.to(map_location).eval()


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model file into the :meth:`PretrainedModel.serialize` layout."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: checkpoint not found")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{p}: not a readable safetensors checkpoint ({err})") from None
    if "model" not in meta or "config" not in meta:
        raise CheckpointError(f"{p}: safetensors file has no audiofcn model metadata")
    return {"model": meta["model"], "config": json.loads(meta["config"]), "state": state,
            "versions": json.loads(meta.get("versions", "{}")),
            "extra": json.loads(meta.get("extra", "{}"))}
