"""Clustering window embeddings into speakers, with an automatic speaker count.

``spectral``: cosine affinity, each row pruned to its ``p`` strongest neighbours (the rest set
to 0, then symmetrised; Park et al. 2019), speaker count among ``min_speakers..max_speakers``
from the eigenvalues, k-means on the row-normalised eigenvectors of the normalised Laplacian
(Ng-Jordan-Weiss). Count rule ``"ratio"``: the largest ratio of consecutive eigenvalues of the
affinity, ``lambda_k / lambda_{k+1}`` (Wang et al. 2018); ``"eigengap"``: the largest gap of
the Laplacian's eigenvalues. ``ahc``: average-linkage agglomerative clustering on cosine
distance, cut at ``threshold`` (or at the requested count). Count rule ``"nme"``: the pruning
share is chosen per recording among ``NME_PRUNES`` by the normalised maximum eigengap (Park et
al. 2020: the smallest ``p / (max gap / largest eigenvalue)``), then the eigengap count. Count
rule ``"penalty"``: every count ``k`` in range is clustered (k-means on the same eigenvectors,
then the refinement below), and the ``k`` with the largest mean cosine similarity of the
windows to their cluster centroid minus ``count_penalty * k`` wins; ``"silhouette"``: the same
candidates, the largest cosine silhouette wins (one speaker scores ``count_penalty``).

Refinement (same for every embedding): clusters whose centroids are more similar than
``merge_threshold`` are merged, and ``resegment`` passes re-assign every window to a centroid
by Viterbi over the time-ordered windows (score: cosine similarity to the centroid, minus
``change_penalty`` per speaker change), centroids re-computed after each pass; clusters left
with under ``min_cluster`` of the windows are dissolved into the others. Windows must be given
in time order for this. With ``center`` the recording's mean embedding is subtracted first.

Large inputs are subsampled to ``max_points`` (evenly) for the clustering itself; every point is
then given the label of its nearest cluster centroid, so memory stays bounded (``n x n``
affinity of at most ``max_points``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


@dataclass
class ClusteringConfig:
    method: str = "spectral"  # "spectral" or "ahc"
    prune: float = 0.25  # spectral: share of neighbours kept per row (at least 6)
    # "eigengap": no other count rule beat it on both DER and exact count on all four
    # validation conditions (docs/diarization.md; "silhouette" lowers DER but over-counts);
    # resegmentation and the pause-cluster rule are opt-in (they assume long turns)
    count: str = "eigengap"  # spectral: "ratio", "eigengap", "nme", "penalty", "silhouette"
    threshold: float = 0.5  # ahc: cosine-distance cut
    merge_threshold: float = 1.0  # merge clusters with more similar centroids (1 = never)
    resegment: int = 0  # Viterbi re-assignment passes (opt-in; see above)
    change_penalty: float = 1.0  # per speaker change, in cosine-similarity units
    min_cluster: float = 0.0  # share of windows under which a cluster is dissolved
    count_penalty: float = 0.05  # "penalty": cost per speaker; "silhouette": score of k = 1
    score_raw: bool = False  # "penalty"/"silhouette": score k before the refinement
    # subtract the recording's mean (unit) embedding before the cosine, then re-normalise: a
    # PLDA-free score normalisation that removes what all windows share (channel, room)
    center: bool = False
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


NME_PRUNES = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def _pruned_laplacian(x: np.ndarray, prune: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(affinity, eigenvalues, eigenvectors)`` of the normalised Laplacian."""
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
    return aff, vals, vecs


def spectral_labels(x: np.ndarray, lo: int, hi: int, prune: float, seed: int,
                    count: str = "ratio") -> np.ndarray:
    from sklearn.cluster import KMeans

    n = len(x)
    if count == "nme" and hi > lo:
        best = None
        for p in NME_PRUNES:
            cand = _pruned_laplacian(x, p)
            v = cand[1]
            g = float(np.max(np.diff(v[: hi + 1])[lo - 1:hi])) / max(1e-9, float(v[-1]))
            r = p / max(g, 1e-9)
            if best is None or r < best[0]:
                best = (r, cand)
        assert best is not None
        aff, vals, vecs = best[1]
        count = "eigengap"
    else:
        aff, vals, vecs = _pruned_laplacian(x, prune)
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
        raise ValueError(f"unknown count rule {count!r} (use 'ratio', 'eigengap', 'nme' or "
                         "'penalty')")
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


def _centroids(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ks = np.unique(labels)
    return ks, _normalize(np.stack([x[labels == k].mean(0) for k in ks]))


def viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """Best path through ``(n, k)`` scores with ``penalty`` per change of state."""
    n, k = scores.shape
    back = np.zeros((n, k), dtype=np.int64)
    acc = scores[0].copy()
    for t in range(1, n):
        j = int(np.argmax(acc))
        switch = acc[j] - penalty
        stay = acc >= switch
        back[t] = np.where(stay, np.arange(k), j)
        acc = np.where(stay, acc, switch) + scores[t]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(acc))
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def assign(x: np.ndarray, core: np.ndarray, core_labels: np.ndarray,
           c: ClusteringConfig) -> np.ndarray:
    """Labels for all (time-ordered) points ``x`` from a clustering of a subset ``core``: the
    nearest core centroid, by Viterbi when ``c.resegment`` > 0; labels renumbered by first
    appearance."""
    _, cents = _centroids(_normalize(core), core_labels)
    x = _normalize(np.asarray(x, dtype=np.float64))
    scores = x @ cents.T
    labels = viterbi(scores, c.change_penalty) if c.resegment > 0 else np.argmax(scores, 1)
    return _relabel(labels)


def refine(x: np.ndarray, labels: np.ndarray, lo: int, c: ClusteringConfig) -> np.ndarray:
    """Merge near-duplicate clusters, then Viterbi resegmentation (module docstring)."""
    labels = labels.copy()
    while c.merge_threshold < 1.0 and len(np.unique(labels)) > lo:
        ks, cents = _centroids(x, labels)
        sim = cents @ cents.T
        np.fill_diagonal(sim, -2.0)
        a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if sim[a, b] < c.merge_threshold:
            break
        labels[labels == ks[b]] = ks[a]
    for _ in range(c.resegment):
        ks, cents = _centroids(x, labels)
        share = np.array([np.mean(labels == k) for k in ks])
        small = np.argsort(share)
        drop = [i for i in small if share[i] < c.min_cluster][: max(0, len(ks) - lo)]
        cents = np.delete(cents, drop, axis=0)
        new = viterbi(x @ cents.T, c.change_penalty)
        if len(np.unique(new)) < lo:  # never below the requested count
            break
        labels = new
    return labels


def cluster(embeddings: np.ndarray, num_speakers: int | None = None, min_speakers: int = 1,
            max_speakers: int = 8, config: ClusteringConfig | None = None) -> np.ndarray:
    """``(n, dim)`` embeddings (time order) -> ``(n,)`` labels ``0..k-1`` (numbered by first
    appearance)."""
    c = config or ClusteringConfig()
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    x = _normalize(np.asarray(embeddings, dtype=np.float64))
    if c.center and n > 1:
        x = _normalize(x - x.mean(0))
    lo, hi = _bounds(n, num_speakers, min_speakers, max_speakers)
    sub = np.unique(np.linspace(0, n - 1, min(n, c.max_points)).round().astype(int))
    xs = x[sub]
    if c.method == "spectral" and c.count in ("penalty", "silhouette"):
        return _relabel(_penalty_count(x, xs, lo, hi, c))
    if c.method == "spectral":
        labels = spectral_labels(xs, lo, hi, c.prune, c.seed, c.count)
    elif c.method == "ahc":
        labels = ahc_labels(xs, lo, hi, c.threshold)
    else:
        raise ValueError(f"unknown clustering method {c.method!r} (use 'spectral' or 'ahc')")
    return _relabel(_spread(x, xs, labels, lo, c))


def _spread(x: np.ndarray, xs: np.ndarray, labels: np.ndarray, lo: int,
            c: ClusteringConfig) -> np.ndarray:
    """Labels of the subsample ``xs`` -> labels of all points, refined."""
    if len(xs) < len(x):
        cents = _normalize(np.stack([xs[labels == k].mean(0) for k in np.unique(labels)]))
        labels = np.argmax(x @ cents.T, axis=1)
    if c.resegment > 0 or c.merge_threshold < 1.0:
        labels = refine(x, labels, lo, c)
    return labels


def _penalty_count(x: np.ndarray, xs: np.ndarray, lo: int, hi: int,
                   c: ClusteringConfig) -> np.ndarray:
    from sklearn.cluster import KMeans

    _, _, vecs = _pruned_laplacian(xs, c.prune)
    best: tuple[float, np.ndarray] | None = None
    for k in range(lo, hi + 1):
        sub = np.zeros(len(xs), dtype=int) if k == 1 else KMeans(
            k, n_init=10, random_state=c.seed).fit_predict(_normalize(vecs[:, :k]))
        labels = _spread(x, xs, sub, lo if c.merge_threshold < 1.0 else k, c)
        scored = _spread(x, xs, sub, k, replace(c, resegment=0, merge_threshold=1.0)) \
            if c.score_raw else labels
        ks, cents = _centroids(x, scored)
        if c.count == "silhouette":
            from sklearn.metrics import silhouette_score

            score = c.count_penalty if len(ks) < 2 else -np.inf if len(ks) >= len(x) else float(
                silhouette_score(x, scored, metric="cosine", random_state=c.seed,
                                 sample_size=min(len(x), c.max_points)))
        else:
            fit = float(np.mean(np.sum(x * cents[np.searchsorted(ks, scored)], axis=1)))
            score = fit - c.count_penalty * len(ks)
        if best is None or score > best[0]:
            best = (score, labels)
    assert best is not None
    return best[1]


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = {old: new for new, old in enumerate(labels[np.sort(first)])}
    return np.array([order[v] for v in labels], dtype=int)
