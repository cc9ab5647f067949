"""Residual vector quantization (SoundStream / EnCodec style).

* codebooks initialised by k-means on the first training batch;
* codebooks learned by exponential moving averages (decay 0.99), not by gradients;
* a code whose usage EMA falls below ``dead_threshold`` is replaced by a random frame of the
  current batch (so no code stays dead);
* straight-through gradients to the encoder, plus a commitment loss;
* per-example quantizer dropout: in training each example uses ``n_q ~ U[1, N_q]`` quantizers,
  so one model serves every bitrate.

Under ``torch.distributed`` the k-means init is broadcast from rank 0 and the EMA statistics are
summed over ranks, so every process keeps identical codebooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from audiofcn.nn import fused_kernels


def _dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def kmeans(x: torch.Tensor, k: int, iters: int = 10,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """k-means (k-means++ seeding, then Lloyd) on ``x`` ``(N, D)``; returns ``(k, D)``
    centroids. With fewer points than ``k``, the extra centroids are perturbed copies of points,
    so every code exists (dead-code replacement sorts them out later)."""
    n = x.shape[0]
    if n <= k:
        idx = torch.randint(n, (k,), generator=generator, device=x.device)
        idx[:n] = torch.arange(n, device=x.device)
        noise = torch.randn((k, x.shape[1]), generator=generator, device=x.device)
        centroids = x[idx] + 1e-3 * (x.std() if n > 1 else 1.0) * noise
        centroids[:n] = x
        return centroids
    # k-means++: each new seed drawn with probability ~ squared distance to the nearest seed,
    # so clusters are not left without a centroid (plain random seeding often is).
    centroids = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    centroids[0] = x[torch.randint(n, (1,), generator=generator, device=x.device)]
    d2 = (x - centroids[0]).square().sum(1)
    for j in range(1, k):
        probs = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / n)
        centroids[j] = x[torch.multinomial(probs, 1, generator=generator)]
        d2 = torch.minimum(d2, (x - centroids[j]).square().sum(1))
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


class EMAVectorQuantizer(nn.Module):
    """One codebook ``(codebook_size, dim)`` learned by EMA.

    Shapes: ``quantize(x)``: ``(N, dim)`` -> ``(N, dim)`` and codes ``(N,)``.
    """

    def __init__(self, dim: int, codebook_size: int, *, decay: float = 0.99,
                 eps: float = 1e-5, dead_threshold: float = 2.0, kmeans_iters: int = 10) -> None:
        super().__init__()
        self.dim, self.codebook_size = dim, codebook_size
        self.decay, self.eps = decay, eps
        self.dead_threshold, self.kmeans_iters = dead_threshold, kmeans_iters
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.register_buffer("codebook", torch.randn(codebook_size, dim) * 0.1)
        self.register_buffer("cluster_size", torch.zeros(codebook_size))
        # EMA of the summed vectors per code. Not saved: after every update it equals
        # codebook * smoothed(cluster_size), so it is rebuilt on load (keeps files small).
        self.register_buffer("embed_sum", self.codebook.clone(), persistent=False)
        self.last_replaced = 0  # dead codes replaced at the last update (for logs and tests)

    def _smoothed_sizes(self) -> torch.Tensor:
        # Laplace smoothing keeps rarely used codes from dividing by ~0.
        total = self.cluster_size.sum()
        return (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        legacy = state_dict.pop(prefix + "embed_sum", None)  # files written before it was dropped
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        with torch.no_grad():
            if legacy is not None:
                self.embed_sum.copy_(legacy)
            else:
                self.embed_sum.copy_(self.codebook * self._smoothed_sizes()[:, None])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code of each row of ``x`` ``(N, dim)`` -> ``(N,)`` int64."""
        # ||x-c||^2 = ||x||^2 - 2 x.c + ||c||^2; ||x||^2 is constant per row.
        dist = self.codebook.square().sum(1)[None] - 2.0 * x @ self.codebook.T
        return dist.argmin(dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return F.embedding(codes, self.codebook)

    @torch.no_grad()
    def init_kmeans(self, x: torch.Tensor) -> None:
        centroids = kmeans(x.float(), self.codebook_size, self.kmeans_iters)
        if _dist_ready():
            torch.distributed.broadcast(centroids, 0)
        self.codebook.copy_(centroids)
        # Start every code above the dead threshold: an unused code survives ~40 EMA steps
        # (decay 0.99) before it is replaced, so k-means' work is not thrown away at once.
        self.cluster_size.fill_(1.5 * self.dead_threshold if self.dead_threshold > 0 else 1.0)
        self.embed_sum.copy_(centroids * self.cluster_size[:, None])
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA update from the vectors ``x`` ``(N, dim)`` assigned to ``codes`` ``(N,)``, then
        dead-code replacement."""
        onehot_counts = torch.bincount(codes, minlength=self.codebook_size).to(x.dtype)
        sums = torch.zeros_like(self.codebook).index_add_(0, codes, x)
        if _dist_ready():
            torch.distributed.all_reduce(onehot_counts)
            torch.distributed.all_reduce(sums)
        self.cluster_size.mul_(self.decay).add_(onehot_counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        self.codebook.copy_(self.embed_sum / self._smoothed_sizes()[:, None])
        self.replace_dead(x)

    @torch.no_grad()
    def replace_dead(self, x: torch.Tensor) -> int:
        dead = self.cluster_size < self.dead_threshold
        n_dead = int(dead.sum())
        rows = x.shape[0]
        if _dist_ready():  # every rank must take the same branch (collectives below)
            t = torch.tensor([rows], device=x.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
            rows = int(t)
        self.last_replaced = n_dead if rows else 0
        if n_dead == 0 or rows == 0:
            return 0
        pick = torch.randint(x.shape[0], (n_dead,), device=x.device)
        fresh = x[pick]
        if _dist_ready():
            torch.distributed.broadcast(fresh, 0)
        self.codebook[dead] = fresh
        self.embed_sum[dead] = fresh * self.dead_threshold
        self.cluster_size[dead] = self.dead_threshold
        return n_dead


@dataclass
class RVQOutput:
    """``quantized`` ``(B, D, T)``; ``codes`` ``(B, n_q, T)`` (codes past an example's n_q are
    -1); ``n_q`` ``(B,)``; ``commit_loss`` scalar; ``perplexity`` ``(n_q,)`` per codebook;
    ``usage`` fraction of codes used in the batch per codebook."""

    quantized: torch.Tensor
    codes: torch.Tensor
    n_q: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class ResidualVectorQuantizer(nn.Module):
    """``num_quantizers`` EMA codebooks applied to successive residuals.

    Shapes: ``forward(z)``: ``(B, D, T)`` -> :class:`RVQOutput`; ``encode(z, n_q)`` ->
    ``(B, n_q, T)`` int64; ``decode(codes)``: ``(B, n_q, T)`` -> ``(B, D, T)``.
    """

    def __init__(self, dim: int, num_quantizers: int, codebook_size: int = 1024, *,
                 decay: float = 0.99, dead_threshold: float = 2.0,
                 quantizer_dropout: float = 1.0, kmeans_iters: int = 10) -> None:
        super().__init__()
        self.dim, self.num_quantizers, self.codebook_size = dim, num_quantizers, codebook_size
        self.quantizer_dropout = quantizer_dropout
        self.layers = nn.ModuleList(
            EMAVectorQuantizer(dim, codebook_size, decay=decay, dead_threshold=dead_threshold,
                               kmeans_iters=kmeans_iters) for _ in range(num_quantizers))

    @property
    def bits_per_code(self) -> int:
        return math.ceil(math.log2(self.codebook_size))

    def sample_n_q(self, batch: int, device: torch.device) -> torch.Tensor:
        """Per-example number of quantizers for training: ``U[1, N_q]`` for a
        ``quantizer_dropout`` fraction of the batch, ``N_q`` for the rest."""
        n_q = torch.full((batch,), self.num_quantizers, dtype=torch.long, device=device)
        drop = torch.rand(batch, device=device) < self.quantizer_dropout
        n_q[drop] = torch.randint(1, self.num_quantizers + 1, (int(drop.sum()),), device=device)
        return n_q

    def forward(self, z: torch.Tensor, n_q: int | torch.Tensor | None = None) -> RVQOutput:
        """Quantize ``z`` ``(B, D, T)``. ``n_q``: an int for all examples, a ``(B,)`` tensor,
        or None (training: sampled per example; eval: all quantizers)."""
        b, d, t = z.shape
        if n_q is None:
            n_q = self.sample_n_q(b, z.device) if self.training else self.num_quantizers
        if isinstance(n_q, int):
            n_q = torch.full((b,), n_q, dtype=torch.long, device=z.device)
        if int(n_q.min()) < 1 or int(n_q.max()) > self.num_quantizers:
            raise ValueError(f"n_q must be in [1, {self.num_quantizers}]")
        flat = z.permute(0, 2, 1).reshape(b * t, d)
        active_rows = n_q.repeat_interleave(t)  # (B*T,) n_q of each frame's example
        residual = flat
        quantized = torch.zeros_like(flat)
        codes = torch.full((b * t, self.num_quantizers), -1, dtype=torch.long, device=z.device)
        perplexities, usages = [], []
        n_layers = int(n_q.max())
        if self.training and _dist_ready():
            # Ranks draw different n_q: all run the same layers so the collectives inside the
            # EMA updates match (a layer no local example uses gets an empty update).
            most = torch.tensor([n_layers], device=z.device)
            torch.distributed.all_reduce(most, op=torch.distributed.ReduceOp.MAX)
            n_layers = int(most)
        for i, layer in enumerate(self.layers[:n_layers]):
            active = active_rows > i
            x_act = residual[active].detach()
            if self.training and not bool(layer.initialized):
                # Rank 0's centroids are broadcast; a rank without active frames still needs
                # some data to run k-means on.
                layer.init_kmeans(x_act if x_act.shape[0] else residual.detach())
            code = layer.encode(residual.detach())
            q = layer.decode(code) * active[:, None].to(flat.dtype)
            if self.training:  # EMA step after quantizing with the current codebook
                layer.update(x_act, code[active])
            quantized = quantized + q
            residual = residual - q
            codes[active, i] = code[active]
            counts = torch.bincount(code[active], minlength=self.codebook_size).float()
            p = counts / counts.sum().clamp_min(1.0)
            perplexities.append(torch.exp(-(p * (p + 1e-10).log()).sum()))
            usages.append((counts > 0).float().mean())
        # Commitment: pull the encoder output towards its (stop-gradient) quantization.
        commit = F.mse_loss(flat, quantized.detach())
        # Straight-through: forward uses the quantized vectors, backward the identity.
        out = flat + (quantized - flat).detach()
        out = out.reshape(b, t, d).permute(0, 2, 1)
        codes = codes.reshape(b, t, self.num_quantizers).permute(0, 2, 1)[:, :n_layers]
        return RVQOutput(out, codes, n_q, commit, torch.stack(perplexities), torch.stack(usages))

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Codes of ``z`` ``(B, D, T)`` with the first ``n_q`` quantizers: ``(B, n_q, T)``."""
        n_q = self.num_quantizers if n_q is None else n_q
        if not 1 <= n_q <= self.num_quantizers:
            raise ValueError(f"n_q must be in [1, {self.num_quantizers}], got {n_q}")
        b, d, t = z.shape
        residual = z.permute(0, 2, 1).reshape(b * t, d)
        codes = []
        for layer in self.layers[:n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c)
            codes.append(c)
        return torch.stack(codes, 1).reshape(b, t, n_q).permute(0, 2, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Sum of the code vectors: ``(B, n_q, T)`` -> ``(B, D, T)``."""
        if codes.shape[1] > self.num_quantizers:
            raise ValueError(f"{codes.shape[1]} codebooks given, model has "
                             f"{self.num_quantizers}")
        out = 0
        for i in range(codes.shape[1]):
            out = out + self.layers[i].decode(codes[:, i])  # (B, T, D)
        return out.permute(0, 2, 1)


class FrozenRVQ:
    """Inference snapshot of a :class:`ResidualVectorQuantizer` for the streaming hot path:
    codebooks stacked once, their squared norms precomputed, and decoding as one table lookup.

    ``encode(z, n_q)``: ``(N, D)`` -> ``(N, n_q)`` int64; ``decode(codes)``: ``(B, n_q, T)`` ->
    ``(B, T, D)`` (time-major). Same codes and vectors as the module (float rounding aside);
    build a new one after the codebooks change.
    """

    def __init__(self, rvq: ResidualVectorQuantizer, fused: bool | None = None) -> None:
        cbs = torch.stack([layer.codebook.detach() for layer in rvq.layers])  # (N_q, K, D)
        self.codebooks = cbs
        self.norms = cbs.square().sum(2)  # (N_q, K)
        self.table = cbs.reshape(-1, cbs.shape[-1])
        self.offsets = torch.arange(cbs.shape[0], device=cbs.device)[:, None] * cbs.shape[1]
        self.num_quantizers = cbs.shape[0]
        self._transposed: torch.Tensor | None = None
        # encode in one numba call (audiofcn.nn.fused_kernels) unless fused=False
        self.fused = (fused_kernels.AVAILABLE if fused is None else fused) \
            and cbs.device.type == "cpu" and cbs.dtype == torch.float32

    def encode(self, z: torch.Tensor, n_q: int) -> torch.Tensor:
        if not 1 <= n_q <= self.num_quantizers:
            raise ValueError(f"n_q must be in [1, {self.num_quantizers}], got {n_q}")
        if self._transposed is None:  # (N_q, D, K) contiguous: ~10% faster products
            self._transposed = self.codebooks.transpose(1, 2).contiguous()
        if self.fused:
            codes_out = torch.empty(z.shape[0], n_q, dtype=torch.long)
            fused_kernels.rvq_encode(z.contiguous().numpy(), self._transposed.numpy(),
                                     self.codebooks.numpy(), self.norms.numpy(),
                                     codes_out.numpy())
            return codes_out
        residual, codes = z, []
        for i in range(n_q):
            code = torch.addmm(self.norms[i], residual, self._transposed[i], alpha=-2.0).argmin(1)
            residual = residual - self.codebooks[i].index_select(0, code)
            codes.append(code)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        if codes.shape[1] > self.num_quantizers:
            raise ValueError(f"{codes.shape[1]} codebooks given, model has "
                             f"{self.num_quantizers}")
        return F.embedding(codes + self.offsets[:codes.shape[1]], self.table).sum(1)
