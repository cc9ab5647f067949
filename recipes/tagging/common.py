"""Shared helpers of the tagging recipe scripts (config files, data root, manifests)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CONFIGS = Path(__file__).resolve().parent / "configs"


def default_data_root() -> Path:
    """``$AUDIOFCN_DATA_ROOT`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("AUDIOFCN_DATA_ROOT", REPO.parent / "shared" / "data"))


def load_config(name_or_path: str) -> dict[str, Any]:
    """A recipe config: a JSON file path, or a name in ``configs/`` (without ``.json``)."""
    p = Path(name_or_path)
    if not p.exists():
        p = CONFIGS / f"{name_or_path}.json"
    if not p.exists():
        known = sorted(f.stem for f in CONFIGS.glob("*.json"))
        raise SystemExit(f"config {name_or_path!r} not found; known: {known}")
    cfg = json.loads(p.read_text())
    cfg.setdefault("name", p.stem)
    return cfg


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) \
            else v
    return out


def build_model(spec: dict[str, Any], labels: list[str], multi_label: bool):
    """Model from ``{"model": name, "variant": optional, "config": {overrides}}``."""
    from audiofcn.models import model_class
    from audiofcn.models.base import config_from_dict

    cls = model_class(spec["model"])
    ccls = cls.config_class
    base = ccls.variant(spec["variant"]) if spec.get("variant") else ccls()
    merged = _merge(dataclasses.asdict(base), spec.get("config", {}))
    merged.update(labels=list(labels), multi_label=multi_label)
    return cls(config_from_dict(ccls, merged))


def labels_of(records: list, multi_label: bool) -> list[str]:
    """The label vocabulary seen in a manifest (sorted)."""
    if multi_label:
        return sorted({t for r in records for t in r.tags})
    return sorted({r.label for r in records if r.label is not None})
