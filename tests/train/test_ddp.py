"""DDP smoke test: ``torchrun --nproc_per_node=2`` (gloo, CPU) trains a tiny tagger a few steps."""

import json
import textwrap
from pathlib import Path

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch.utils.data import TensorDataset
    from audiofcn.models.rawwave import RawWaveCNN, RawWaveCNNConfig
    from audiofcn.train import TrainConfig, Trainer, distributed_context
    from audiofcn.train.classification import TaggingTask

    torch.set_num_threads(1)
    out = sys.argv[1]
    ctx = distributed_context("cpu")
    g = torch.Generator().manual_seed(0)  # same data on every rank; the sampler shards it
    x = torch.randn(32, 2000, generator=g)
    y = (torch.rand(32, 2, generator=g) > 0.5).float()
    torch.manual_seed(0)  # identical initial weights on both ranks (DDP also broadcasts them)
    model = RawWaveCNN(RawWaveCNNConfig(labels=("a", "b"), multi_label=True, input_length=2000,
                                        first_channels=8, stages=((8, 1), (16, 1))))
    cfg = TrainConfig(out_dir=out, epochs=2, batch_size=4, progress=False, device="cpu")
    trainer = Trainer(model, TaggingTask(), TensorDataset(x, y), TensorDataset(x[:8], y[:8]), cfg,
                      ctx=ctx)
    trainer.fit()
    w = torch.cat([p.detach().flatten() for p in model.parameters()])
    torch.save(w, f"{out}/weights_rank{ctx.rank}.pt")
    print("rank", ctx.rank, "steps", trainer.step)
""")


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path, run_torchrun):
    proc = run_torchrun(SCRIPT)
    # 32 examples / 2 ranks / batch 4 = 4 steps per epoch on each rank
    assert proc.stdout.count("steps 8") == 2, proc.stdout
    info = json.loads((tmp_path / "run" / "train_info.json").read_text())
    assert info["world_size"] == 2 and len(info["history"]) == 2
    w0 = torch.load(tmp_path / "run" / "weights_rank0.pt")
    w1 = torch.load(tmp_path / "run" / "weights_rank1.pt")
    assert torch.allclose(w0, w1)  # gradients were all-reduced: replicas stayed in sync
    assert (Path(tmp_path / "run") / "best.safetensors").exists()
