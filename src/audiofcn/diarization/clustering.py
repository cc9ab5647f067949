"""Clustering window embeddings into speakers, with an automatic speaker count.

``spectral``: cosine affinity, each row pruned to its ``p`` strongest neighbours (the rest set
to 0, then symmetrised; Park et al. 2019), speaker count among ``min_speakers..max_speakers``
from the eigenvalues, k-means on the row-normalised eigenvectors of the normalised Laplacian
(Ng-Jordan-Weiss). Count rule ``"ratio"``: the largest ratio of consecutive eigenvalues of the
affinity, ``lambda_k / lambda_{k+1}`` (Wang et al. 2018); ``"eigengap"``: the largest gap of
the Laplacian's eigenvalues. ``ahc``: average-linkage agglomerative clustering on cosine
distance, cut at ``threshold`` (or at the requested count).

Large inputs are subsampled to ``max_points`` (evenly) for the clustering itself; every point is
then given the label of its nearest cluster centroid, so memory stays bounded (``n x n``
affinity of at most ``max_points``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClusteringConfig:
    method: str = "spectral"  # "spectral" or "ahc"
    prune: float = 0.25  # spectral: share of neighbours kept per row (at least 6)
    count: str = "eigengap"  # spectral: "ratio" or "eigengap"
    threshold: float = 0.5  # ahc: cosine-distance cut
    max_points: int = 2000
    seed: int = 0


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def _bounds(n: int, num: int | None, lo: int, hi: int) -> tuple[int, int]:
    if num is not None:
        lo = hi = num
    hi = max(1, min(hi, n))
    lo = max(1, min(lo, hi))
    return lo, hi


def spectral_labels(x: np.ndarray, lo: int, hi: int, prune: float, seed: int,
                    count: str = "ratio") -> np.ndarray:
    from sklearn.cluster import KMeans

    n = len(x)
    sim = np.clip(x @ x.T, 0.0, None)
    keep = max(6, int(np.ceil(prune * n)))
    if keep < n:
        kth = np.partition(sim, n - keep, axis=1)[:, n - keep][:, None]
        sim = np.where(sim >= kth, sim, 0.0)
    aff = 0.5 * (sim + sim.T)
    np.fill_diagonal(aff, 0.0)
    deg = aff.sum(1)
    d = 1.0 / np.sqrt(np.maximum(deg, 1e-9))
    lap = np.eye(n) - d[:, None] * aff * d[None, :]
    vals, vecs = np.linalg.eigh(lap)
    if hi == lo:
        k = lo
    elif count == "eigengap":
        gaps = np.diff(vals[: hi + 1])  # gaps[k-1] = lambda_k - lambda_{k-1}: k clusters
        k = lo + int(np.argmax(gaps[lo - 1:hi]))
    elif count == "ratio":
        # with the self-similarities on the diagonal (near-zero eigenvalues of the zero-diagonal
        # matrix would give huge, meaningless ratios); k = n has no next eigenvalue to compare
        top = min(hi, n - 1)
        a = np.maximum(np.linalg.eigvalsh(aff + np.eye(n))[::-1][: top + 1], 1e-9)
        k = lo + int(np.argmax(a[lo - 1:top] / a[lo:top + 1])) if top >= lo else lo
    else:
        raise ValueError(f"unknown count rule {count!r} (use 'ratio' or 'eigengap')")
    if k == 1:
        return np.zeros(n, dtype=int)
    emb = _normalize(vecs[:, :k])
    return KMeans(k, n_init=10, random_state=seed).fit_predict(emb)


def ahc_labels(x: np.ndarray, lo: int, hi: int, threshold: float) -> np.ndarray:
    from scipy.cluster.hierarchy import fcluster, linkage

    if len(x) == 1:
        return np.zeros(1, dtype=int)
    z = linkage(x, method="average", metric="cosine")
    labels = fcluster(z, t=threshold, criterion="distance") - 1
    k = len(np.unique(labels))
    if k < lo or k > hi:
        labels = fcluster(z, t=min(max(k, lo), hi), criterion="maxclust") - 1
    return labels


def cluster(embeddings: np.ndarray, num_speakers: int | None = None, min_speakers: int = 1,
            max_speakers: int = 8, config: ClusteringConfig | None = None) -> np.ndarray:
    """``(n, dim)`` embeddings -> ``(n,)`` labels ``0..k-1`` (numbered by first appearance)."""
    c = config or ClusteringConfig()
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    lo, hi = _bounds(n, num_speakers, min_speakers, max_speakers)
    sub = np.unique(np.linspace(0, n - 1, min(n, c.max_points)).round().astype(int))
    xs = x[sub]
    if c.method == "spectral":
        labels = spectral_labels(xs, lo, hi, c.prune, c.seed, c.count)
    elif c.method == "ahc":
        labels = ahc_labels(xs, lo, hi, c.threshold)
    else:
        raise ValueError(f"unknown clustering method {c.method!r} (use 'spectral' or 'ahc')")
    if len(sub) < n:
        cents = _normalize(np.stack([xs[labels == k].mean(0) for k in np.unique(labels)]))
        labels = np.argmax(x @ cents.T, axis=1)
    _, first = np.unique(labels, return_index=True)
    order = {old: new for new, old in enumerate(labels[np.sort(first)])}
    return np.array([order[v] for v in labels], dtype=int)
