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


@pytest.mark.parametrize("count", ["ratio", "eigengap", "nme", "penalty", "silhouette"])
def test_fewer_points_than_max_speakers(count: str) -> None:
    x = blobs([3, 3])
    labels = cluster(x, max_speakers=8, config=ClusteringConfig(count=count))
    assert 1 <= len(np.unique(labels)) <= 6


def test_viterbi_penalty_removes_short_blips() -> None:
    from audiofcn.diarization.clustering import viterbi

    scores = np.zeros((20, 2))
    scores[:, 0] = 1.0
    scores[8:10] = [0.0, 1.0]  # a 2-step blip of state 1
    assert viterbi(scores, 0.0).tolist() == [0] * 8 + [1] * 2 + [0] * 10
    assert viterbi(scores, 1.5).tolist() == [0] * 20
    scores[8:] = [0.0, 1.0]  # a real change survives the penalty
    assert viterbi(scores, 1.5).tolist() == [0] * 8 + [1] * 12


def test_resegmentation_fixes_isolated_errors() -> None:
    x = blobs([40, 40], spread=0.3, seed=1)
    x[10] = x[60]  # one window of speaker B inside A's turn: a confusable outlier
    cfg = ClusteringConfig(resegment=2, change_penalty=2.0)
    labels = cluster(x, num_speakers=2, config=cfg)
    assert labels.tolist() == [0] * 40 + [1] * 40
    plain = cluster(x, num_speakers=2, config=ClusteringConfig(resegment=0))
    assert plain[10] == 1


@pytest.mark.parametrize("count", ["silhouette", "penalty", "nme"])
def test_count_rules_find_three(count: str) -> None:
    x = blobs([25, 20, 30], spread=0.1)
    labels = cluster(x, config=ClusteringConfig(count=count, resegment=1, count_penalty=0.05))
    assert labels.tolist() == [0] * 25 + [1] * 20 + [2] * 30
    assert len(np.unique(cluster(x, num_speakers=2, config=ClusteringConfig(count=count)))) == 2


def test_merge_threshold_joins_split_speaker() -> None:
    from audiofcn.diarization.clustering import refine

    x = blobs([30, 30], spread=0.05)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    split = np.array([0] * 15 + [2] * 15 + [1] * 30)  # speaker A split in two clusters
    merged = refine(x, split, 1, ClusteringConfig(merge_threshold=0.8))
    assert len(np.unique(merged[:30])) == 1 and len(np.unique(merged)) == 2
    assert len(np.unique(refine(x, split, 3, ClusteringConfig(merge_threshold=0.8)))) == 3


def test_pause_cluster_is_dissolved() -> None:
    from audiofcn.diarization.pipeline import DiarizationConfig, _drop_pause_clusters

    x = blobs([20, 10, 20], spread=0.1)
    labels = np.array([0] * 20 + [2] * 10 + [1] * 20)
    share = np.array([1.0] * 20 + [0.6] * 10 + [0.95] * 20)  # cluster 2: windows over pauses
    out = _drop_pause_clusters(x, labels, share, 1, DiarizationConfig(min_cluster_speech=0.8))
    assert len(np.unique(out)) == 2 and out[:20].tolist() == [0] * 20
    assert out[-20:].tolist() == [1] * 20
    same = _drop_pause_clusters(x, labels, share, 3, DiarizationConfig(min_cluster_speech=0.8))
    assert same.tolist() == labels.tolist()  # never below min_speakers
