"""Patch tests: FPS centres + kNN, coverage guarantee, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from mdss_core.preprocess import farthest_point_sampling, make_patches


def _cloud(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3)).astype(np.float32)


def test_patch_count_shape_and_coverage() -> None:
    pts = _cloud(3000)
    patches = make_patches(pts, k=100, coverage=10.0)
    assert patches.dtype == np.int64 and patches.shape[1] == 100
    assert patches.shape[0] >= round(3000 * 10 / 100)
    assert patches.min() >= 0 and patches.max() < 3000
    counts = np.bincount(patches.ravel(), minlength=3000)
    assert counts.min() >= 1
    assert counts.mean() == pytest.approx(patches.size / 3000)


def test_each_patch_is_the_k_nearest_neighbours_of_its_centre() -> None:
    pts = _cloud(2000, seed=1)
    patches = make_patches(pts, k=50, coverage=5.0)
    for patch in patches[:: max(1, len(patches) // 10)]:
        dist = np.linalg.norm(pts - pts[patch[0]], axis=1)
        inside = np.zeros(len(pts), dtype=bool)
        inside[patch] = True
        assert len(set(patch.tolist())) == 50
        assert dist[inside].max() <= dist[~inside].min() + 1e-7


def test_uncovered_points_get_extra_patches() -> None:
    pts = _cloud(2000, seed=2)
    # coverage 0.5 -> 10 patches of 100 = 1000 slots for 2000 points: extras are required
    patches = make_patches(pts, k=100, coverage=0.5)
    assert patches.shape[0] > 10
    assert np.bincount(patches.ravel(), minlength=2000).min() >= 1


def test_far_outliers_are_covered() -> None:
    pts = np.concatenate([_cloud(1000, seed=3), np.array([[50.0, 50, 50], [-40, 0, 0]])])
    patches = make_patches(pts.astype(np.float32), k=64, coverage=2.0)
    covered = np.zeros(len(pts), dtype=bool)
    covered[patches.ravel()] = True
    assert covered.all()


def test_fewer_points_than_k_gives_one_full_patch() -> None:
    pts = _cloud(30, seed=4)
    patches = make_patches(pts, k=100)
    assert patches.shape == (1, 100)
    assert set(patches[0].tolist()) == set(range(30))


def test_patches_are_deterministic_by_seed() -> None:
    pts = _cloud(1500, seed=5)
    a = make_patches(pts, k=60, seed=11)
    np.testing.assert_array_equal(a, make_patches(pts, k=60, seed=11))
    assert not np.array_equal(a, make_patches(pts, k=60, seed=12))


def test_farthest_point_sampling_spreads_points() -> None:
    pts = _cloud(300, seed=7)
    picks = farthest_point_sampling(pts, 12, seed=0)
    assert len(set(picks.tolist())) == 12
    # greedy property: each pick is (one of) the points farthest from the picks before it
    for i in range(1, len(picks)):
        gap = np.linalg.norm(pts[:, None] - pts[picks[:i]][None], axis=2).min(axis=1)
        assert gap[picks[i]] == pytest.approx(gap.max())
    pts = _cloud(500, seed=6)
    chosen = pts[farthest_point_sampling(pts, 20)]
    random = pts[np.random.default_rng(0).choice(500, 20, replace=False)]

    def min_gap(p: np.ndarray) -> float:
        d = np.linalg.norm(p[:, None] - p[None], axis=2)
        return float(d[~np.eye(len(p), dtype=bool)].min())

    assert min_gap(chosen) > min_gap(random)


def test_make_patches_rejects_bad_points() -> None:
    with pytest.raises(ValueError, match="empty"):
        make_patches(np.zeros((0, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        make_patches(np.zeros((10, 2), dtype=np.float32))
    bad = _cloud(10)
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        make_patches(bad)
