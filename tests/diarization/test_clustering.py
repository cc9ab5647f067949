from __future__ import annotations

import numpy as np
import pytest

from audiofcn.diarization.clustering import ClusteringConfig, cluster


def blobs(sizes: list[int], dim: int = 16, spread: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.standard_normal((dim, dim)))[0][: len(sizes)]
    return np.concatenate([c + spread * rng.standard_normal((n, dim))
                           for c, n in zip(centres, sizes, strict=True)])


@pytest.mark.parametrize("method", ["spectral", "ahc"])
def test_two_separated_clusters_found(method: str) -> None:
    x = blobs([30, 20])
    labels = cluster(x, config=ClusteringConfig(method=method))
    assert labels.tolist() == [0] * 30 + [1] * 20


@pytest.mark.parametrize("method", ["spectral", "ahc"])
def test_count_bounds(method: str) -> None:
    x = blobs([15, 15, 15])
    cfg = ClusteringConfig(method=method)
    assert len(np.unique(cluster(x, config=cfg))) == 3
    assert len(np.unique(cluster(x, num_speakers=2, config=cfg))) == 2
    assert len(np.unique(cluster(x, max_speakers=2, config=cfg))) <= 2
    assert 4 <= len(np.unique(cluster(x, min_speakers=4, config=cfg))) <= 8
    assert len(np.unique(cluster(x, min_speakers=4, max_speakers=4, config=cfg))) == 4


def test_subsampled_clustering_labels_every_point() -> None:
    x = blobs([300, 200])
    labels = cluster(x, config=ClusteringConfig(max_points=50))
    assert labels.tolist() == [0] * 300 + [1] * 200


def test_edge_cases() -> None:
    assert cluster(np.zeros((0, 4))).shape == (0,)
    assert cluster(np.ones((1, 4))).tolist() == [0]
    with pytest.raises(ValueError, match="unknown clustering"):
        cluster(blobs([5, 5]), config=ClusteringConfig(method="kmeans"))


@pytest.mark.parametrize("count", ["ratio", "eigengap"])
def test_fewer_points_than_max_speakers(count: str) -> None:
    x = blobs([3, 3])
    labels = cluster(x, max_speakers=8, config=ClusteringConfig(count=count))
    assert 1 <= len(np.unique(labels)) <= 6
