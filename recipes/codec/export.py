"""Export a trained SoundStream checkpoint as the shipped model (float16 storage, a few MB).

    python recipes/codec/export.py runs/codec/small/best.safetensors \
        src/audiofcn/pretrained/soundstream_16k_c16.safetensors

Weights and codebooks are stored as float16 (the model runs in float32 after loading); EMA
training statistics that are rebuilt on load are not stored. The ``model_id`` written into every
``.afc`` file is the fingerprint of the loaded (float32) model, so it is stable across loads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from audiofcn.codec import model_fingerprint
from audiofcn.io.audio import atomic_output
from audiofcn.models.soundstream import SoundStream


def export(src: Path, dst: Path, note: dict | None = None) -> str:
    from safetensors.torch import save_file

    model = SoundStream.from_pretrained(src)
    blob = model.serialize()
    state = {k: (v.half() if v.is_floating_point() else v).contiguous().clone()
             for k, v in blob["state"].items()}
    meta = {"model": blob["model"], "config": json.dumps(blob["config"]),
            "versions": json.dumps(blob["versions"]),
            "extra": json.dumps({"storage": "float16", "source": src.name, **(note or {})})}
    with atomic_output(dst, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=meta)
    reloaded = SoundStream.from_pretrained(dst)
    x = torch.randn(1, 1, 16000) * 0.1
    # float16 storage changes the weights slightly: check the codec still behaves the same.
    agree = (reloaded.encode(x, 12) == model.encode(x, 12)).float().mean().item()
    print(f"{dst}: {dst.stat().st_size / 1e6:.1f} MB, model_id {model_fingerprint(reloaded)}, "
          f"codes identical to the float32 model on {100 * agree:.1f}% of a noise test")
    return model_fingerprint(reloaded)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("output", type=Path)
    args = ap.parse_args(argv)
    export(args.checkpoint, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
