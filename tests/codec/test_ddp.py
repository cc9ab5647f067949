"""SoundStream under ``torchrun --nproc_per_node=2`` (gloo, CPU): the RVQ's k-means init, EMA
updates and dead-code replacements, and the task's discriminators stay identical on every rank,
even though each rank draws its own per-example n_q."""

import textwrap

import pytest
import torch

SCRIPT = textwrap.dedent("""
    import sys, torch
    from audiofcn.codec.training import SoundStreamTask, SoundStreamTaskConfig
    from audiofcn.models.soundstream import SoundStream, SoundStreamConfig
    from audiofcn.train import TrainConfig, Trainer, distributed_context

    torch.set_num_threads(1)
    out = sys.argv[1]
    ctx = distributed_context("cpu")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 1600, generator=g) * 0.1
    torch.manual_seed(0)
    model = SoundStream(SoundStreamConfig(channels=2, embedding_dim=4, num_quantizers=6,
                                          codebook_size=16, strides=(4, 5),
                                          dead_code_threshold=0.5))
    task = SoundStreamTask(SoundStreamTaskConfig(warmup_steps=2, wave_disc_channels=4,
                                                 stft_disc_channels=4))
    torch.manual_seed(1 + ctx.rank)  # different quantizer dropout draws on each rank
    cfg = TrainConfig(out_dir=out, epochs=2, batch_size=4, progress=False, device="cpu")
    Trainer(model, task, list(x), None, cfg, ctx=ctx).fit()
    state = {k: v for k, v in model.state_dict().items()}
    state.update({"disc." + k: v for k, v in task.disc.state_dict().items()})
    torch.save(state, f"{out}/state_rank{ctx.rank}.pt")
    print("rank", ctx.rank, "done")
""")


@pytest.mark.slow
def test_rvq_and_discriminators_stay_in_sync_across_ranks(tmp_path, run_torchrun):
    run_torchrun(SCRIPT)
    s0 = torch.load(tmp_path / "run" / "state_rank0.pt")
    s1 = torch.load(tmp_path / "run" / "state_rank1.pt")
    assert s0.keys() == s1.keys()
    assert any(k.endswith("codebook") for k in s0) and any(k.startswith("disc.") for k in s0)
    for k in s0:
        assert torch.allclose(s0[k].float(), s1[k].float(), atol=1e-5), k
    assert bool(s0["quantizer.layers.0.initialized"])
