"""Score echo cancellers on a training config's validation split (the checkpoint criterion).

    python recipes/aec/validate.py --config recipes/aec/configs/cpu_hybrid_real.json \
        --data runs/aec/data --model src/audiofcn/pretrained/aec_e2e.safetensors \
        --model runs/aec/hybrid_real/best.safetensors --out runs/aec/hybrid_real/valid

The validation clips are the ones training validated on (``train.py``'s ``valid_dataset``:
held-out speakers and noises, fixed seeds), each run through the linear stage over its
warm-up and cut to its last ``data.duration`` seconds, so every model sees the same
microphone samples (a hybrid one with its linear stage already converged, as in a call
under way; an end-to-end one ignores the linear stage). Per model: the training task's
loss (the criterion ``best.safetensors`` is chosen by) and, per clip kind, ERLE (far-end
single talk: no near-end talker), PESQ-WB against the clean near end (double talk) and
PESQ-WB against the near end + noise target where there is no echo (near-end single talk).
Never the test recordings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from audiofcn.aec.hybrid import HybridCanceller
from audiofcn.aec.metrics import erle, pesq_wb
from audiofcn.aec.task import EchoCancellerTask
from audiofcn.models import load_model
from audiofcn.models.base import config_from_dict
from audiofcn.models.echo import EchoCancellerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare import DEFAULT_ROOT  # noqa: E402
from train import load_pools, load_real_pools, sim_config, valid_dataset, with_linear  # noqa: E402


def kind(ex: dict) -> str:
    near = float(np.mean(np.square(ex["near"].numpy())))
    ref = float(np.mean(np.square(ex["ref"].numpy())))
    if ref < 1e-10:
        return "near_single"
    return "far_single" if near < 1e-10 else "double_talk"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("runs/aec/data"))
    ap.add_argument("--data-root", type=Path,
                    default=Path(os.environ.get("AUDIOFCN_DATA_ROOT", DEFAULT_ROOT)))
    ap.add_argument("--model", type=Path, action="append", required=True)
    ap.add_argument("--out", type=Path, default=Path("runs/aec/valid"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = json.loads(args.config.read_text())
    train, valid = load_pools(args.data_root, args.data, cfg["data"]["measured_rir_repeat"],
                              cfg["data"].get("extra_near", []))
    if cfg["data"].get("real_talkers", False):
        train, valid = load_real_pools(args.data, train)
    mcfg = config_from_dict(EchoCancellerConfig, cfg["model"])
    data = with_linear(cfg, mcfg, valid_dataset(cfg, sim_config(cfg, mcfg), valid))
    examples = [data[i] for i in range(len(data))]
    task = EchoCancellerTask(**cfg.get("task", {}))
    report: dict = {"config": str(args.config), "clips": len(examples), "models": {}}
    for path in args.model:
        model = load_model(path).eval()
        logs: dict[str, list[float]] = {}
        scores: dict[str, list[float]] = {"far_single": [], "double_talk": [], "near_single": []}
        canceller = HybridCanceller(model) if model.config.hybrid else None
        bs = cfg["train"]["batch_size"]  # the trainer's validation batches, in its order
        for i in range(0, len(examples), bs):
            batch = {k: torch.stack([ex[k] for ex in examples[i:i + bs]])
                     for k in examples[i]}
            with torch.inference_mode():
                for k, v in task.validation_step(model, batch).items():
                    logs.setdefault(k, []).append(v)
        for ex in examples:
            batch = {k: v[None] for k, v in ex.items()}
            with torch.inference_mode():
                spec = model.stft
                extra = ((spec(batch["linear"]), spec(batch["echo_est"]))
                         if canceller is not None else ())
                near = model(spec(batch["mic"]), spec(batch["ref"]), *extra)["near"]
                out = model.istft(near, length=ex["mic"].shape[-1])[0].numpy()
            k = kind(ex)
            mic, clean = ex["mic"].numpy(), ex["near"].numpy()
            if k == "far_single":
                scores[k].append(erle(mic, out))
            elif k == "double_talk":
                scores[k].append(pesq_wb(clean, out, 16000))
            else:
                scores[k].append(pesq_wb(clean + ex["noise"].numpy(), out, 16000))
        entry = {f"valid_{k}": float(np.mean(v)) for k, v in logs.items()}
        entry.update({f"{k} ({'ERLE dB' if k == 'far_single' else 'PESQ-WB'}), n="
                      f"{len(v)}": float(np.mean(v)) for k, v in scores.items() if v})
        report["models"][str(path)] = entry
        print(path, json.dumps(entry), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
