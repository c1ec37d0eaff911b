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


def _assert_covers(patches: np.ndarray, n: int, k: int) -> None:
    assert patches.dtype == np.int64 and patches.ndim == 2 and patches.shape[1] == k
    assert patches.min() >= 0 and patches.max() < n
    assert np.bincount(patches.ravel(), minlength=n).min() >= 1


def test_a_tiny_cloud_enlarged_to_the_model_size_is_cut_in_bounded_time() -> None:
    # Issue #19: an 8x8 capture resized (nearest) to 256x256 puts 1024 copies on each position,
    # more than k = 500, and the covering loop never ended. Before the fix this test hung.
    from mdss_core.preprocess.resize import resize_nearest

    small = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    pts = resize_nearest(small, 256).reshape(-1, 3)
    patches = make_patches(pts, k=500, coverage=10.0)
    _assert_covers(patches, len(pts), 500)
    # About N / k patches (each repeating the distinct positions), not one per copy.
    assert len(patches) < 4 * len(pts) * 10 / 500


@pytest.mark.parametrize(
    "name",
    ["identical", "few distinct", "one heavy position", "line", "signed zeros"],
)
def test_repeated_positions_are_all_covered(name: str) -> None:
    rng = np.random.default_rng(1)
    pts = {
        "identical": np.ones((5000, 3)),
        "few distinct": np.repeat(rng.random((13, 3)), 300, axis=0),
        "one heavy position": np.concatenate([rng.random((2000, 3)), np.full((700, 3), 0.5)]),
        "line": np.repeat(np.linspace(0, 1, 50)[:, None], 3, axis=1).repeat(120, axis=0),
        "signed zeros": np.concatenate([np.zeros((90, 3)), -np.zeros((90, 3)), rng.random((9, 3))]),
    }[name].astype(np.float32)
    patches = make_patches(pts, k=64, coverage=3.0)
    _assert_covers(patches, len(pts), 64)
    np.testing.assert_array_equal(patches, make_patches(pts, k=64, coverage=3.0))


def test_a_patch_of_repeated_positions_is_geometrically_a_patch_of_distinct_ones() -> None:
    # Each emitted row repeats one row of the distinct positions with other copies: the
    # coordinates it holds are those of a kNN patch of the distinct cloud.
    rng = np.random.default_rng(2)
    distinct = rng.random((400, 3)).astype(np.float32)
    pts = np.repeat(distinct, 100, axis=0)
    patches = make_patches(pts, k=50, coverage=2.0)
    _assert_covers(patches, len(pts), 50)
    for row in patches[:: max(1, len(patches) // 10)]:
        centre = pts[row[0]]
        dist = np.linalg.norm(distinct - centre, axis=1)
        held = {tuple(p) for p in pts[row].tolist()}
        assert len(held) == 50
        nearest = {tuple(p) for p in distinct[np.argsort(dist)[:50]].tolist()}
        assert held == nearest
