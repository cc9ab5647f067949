from __future__ import annotations

import pytest
import torch

from audiofcn.nn.quantizer import EMAVectorQuantizer, ResidualVectorQuantizer, kmeans


def _clustered(n: int = 400, d: int = 4, k: int = 8, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 5
    return centres[torch.randint(k, (n,), generator=g)] + 0.05 * torch.randn(n, d, generator=g)


def test_kmeans_finds_clusters() -> None:
    x = _clustered()
    c = kmeans(x, 8, iters=20, generator=torch.Generator().manual_seed(1))
    # Every point is close to some centroid.
    assert torch.cdist(x, c).min(dim=1).values.max() < 3.0


def test_kmeans_init_changes_codebook_on_first_training_batch() -> None:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 2, codebook_size=8).train()
    before = rvq.layers[0].codebook.clone()
    z = _clustered().T[None]  # (1, 4, 400)
    rvq(z, n_q=2)
    layer = rvq.layers[0]
    assert bool(layer.initialized)
    assert not torch.allclose(layer.codebook, before)
    # The k-means codebook quantizes the clustered data far better than the random one.
    err_after = (z[0].T - layer.decode(layer.encode(z[0].T))).square().mean()
    init = EMAVectorQuantizer(4, 8)
    init.codebook.copy_(before)
    err_before = (z[0].T - init.decode(init.encode(z[0].T))).square().mean()
    assert err_after < 0.1 * err_before


def test_eval_mode_does_not_update_codebooks() -> None:
    rvq = ResidualVectorQuantizer(4, 2, codebook_size=8).eval()
    before = [layer.codebook.clone() for layer in rvq.layers]
    rvq(torch.randn(2, 4, 10))
    assert all(torch.equal(b, layer.codebook) for b, layer in zip(before, rvq.layers, strict=False))


def test_ema_moves_codebook_towards_data() -> None:
    vq = EMAVectorQuantizer(2, 4, decay=0.5, dead_threshold=0.0)
    vq.init_kmeans(torch.randn(64, 2))
    target = torch.full((32, 2), 3.0)
    for _ in range(20):
        vq.update(target, vq.encode(target))
    assert torch.cdist(vq.codebook, target[:1]).min() < 0.01


def test_dead_codes_are_replaced_by_batch_frames() -> None:
    torch.manual_seed(0)
    vq = EMAVectorQuantizer(3, 16, dead_threshold=1.0)
    vq.init_kmeans(torch.randn(100, 3))
    vq.cluster_size[:8] = 0.0  # codes 0..7 unused for a long time
    before = vq.codebook.clone()
    x = torch.randn(50, 3) + 10.0  # far away from every code
    vq.update(x, vq.encode(x))
    assert vq.last_replaced >= 8
    replaced = (vq.codebook - before).abs().sum(1) > 0
    assert replaced[:8].all()
    # Replacements are frames of the batch.
    for row in vq.codebook[:8]:
        assert (row[None] - x).abs().sum(1).min() < 1e-5


def test_quantizer_dropout_varies_n_q_per_example() -> None:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 6, codebook_size=8).train()
    out = rvq(torch.randn(64, 4, 5))
    assert out.n_q.shape == (64,)
    assert out.n_q.min() >= 1 and out.n_q.max() <= 6
    assert len(set(out.n_q.tolist())) > 3
    # Codes past an example's n_q are unused (-1), the ones before are real codes.
    for b in range(64):
        k = int(out.n_q[b])
        assert (out.codes[b, :k] >= 0).all()
        assert (out.codes[b, k:] == -1).all()


def test_dropout_fraction_zero_keeps_all_quantizers() -> None:
    rvq = ResidualVectorQuantizer(4, 6, codebook_size=8, quantizer_dropout=0.0).train()
    assert (rvq(torch.randn(8, 4, 5)).n_q == 6).all()


def test_encode_decode_match_quantized_output_in_eval() -> None:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(4, 3, codebook_size=8).train()
    z = torch.randn(3, 4, 20)
    rvq(z, n_q=3)  # k-means init
    rvq.eval()
    out = rvq(z, n_q=3)
    codes = rvq.encode(z, n_q=3)
    assert codes.shape == (3, 3, 20) and codes.dtype == torch.long
    assert torch.equal(codes, out.codes)
    assert torch.allclose(rvq.decode(codes), out.quantized, atol=1e-6)
    # More quantizers never increase the residual error (greedy residual coding).
    errs = [(z - rvq.decode(rvq.encode(z, n_q=k))).square().mean() for k in (1, 2, 3)]
    assert errs[0] >= errs[1] >= errs[2]


def test_straight_through_gradient_reaches_input() -> None:
    rvq = ResidualVectorQuantizer(4, 2, codebook_size=8).train()
    z = torch.randn(2, 4, 6, requires_grad=True)
    out = rvq(z, n_q=2)
    (out.quantized.sum() + out.commit_loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bad_n_q_rejected() -> None:
    rvq = ResidualVectorQuantizer(4, 2, codebook_size=8)
    with pytest.raises(ValueError):
        rvq.encode(torch.randn(1, 4, 3), n_q=3)


def test_ema_state_survives_save_and_load() -> None:
    torch.manual_seed(0)
    a = EMAVectorQuantizer(3, 8, dead_threshold=0.0)
    a.init_kmeans(torch.randn(40, 3))
    x = torch.randn(40, 3)
    a.update(x, a.encode(x))
    state = a.state_dict()
    assert "embed_sum" not in state  # rebuilt on load: files stay small
    b = EMAVectorQuantizer(3, 8, dead_threshold=0.0)
    b.load_state_dict(state)
    assert torch.allclose(b.embed_sum, a.embed_sum, atol=1e-5)
    # Both continue training identically.
    y = torch.randn(40, 3)
    a.update(y, a.encode(y))
    b.update(y, b.encode(y))
    assert torch.allclose(a.codebook, b.codebook, atol=1e-5)


def test_frozen_rvq_matches_module_codes_and_vectors() -> None:
    from audiofcn.nn.quantizer import FrozenRVQ

    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(8, 4, 32)
    rvq.train()(torch.randn(3, 8, 50))  # k-means init: codes spread out
    rvq.eval()
    z = torch.randn(2, 8, 30)
    codes = rvq.encode(z, 3)
    flat = z.permute(0, 2, 1).reshape(60, 8)
    from audiofcn.nn import fused_kernels

    for fused in [False] + ([True] if fused_kernels.AVAILABLE else []):  # numba kernel or torch
        frozen = FrozenRVQ(rvq, fused=fused)
        assert frozen.fused == fused
        assert torch.equal(frozen.encode(flat, 3).reshape(2, 30, 3).permute(0, 2, 1), codes)
        assert torch.allclose(frozen.decode(codes), rvq.decode(codes).permute(0, 2, 1),
                              atol=1e-6)
        with pytest.raises(ValueError):
            frozen.encode(flat, 5)
