"""Metric tests: hand-computed cases and a brute-force PRO reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from mdss_core.metrics import aupro, auroc, auroc_interval, pixel_auroc, pro_curve, roc_curve

# ---------------------------------------------------------------- ROC / AUROC


def test_auroc_perfect_and_inverted() -> None:
    labels = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.8, 0.9])
    assert auroc(labels, scores) == pytest.approx(1.0)
    assert auroc(labels, -scores) == pytest.approx(0.0)


def test_roc_ties_form_one_step() -> None:
    # positives score {0.5, 0.9}, negatives {0.5, 0.2}. Pairs (pos, neg):
    # (0.5, 0.5) tie -> 1/2, (0.5, 0.2) -> 1, (0.9, 0.5) -> 1, (0.9, 0.2) -> 1: AUROC = 3.5/4.
    labels = np.array([0, 1, 0, 1])
    scores = np.array([0.5, 0.5, 0.2, 0.9])
    fpr, tpr, thr = roc_curve(labels, scores)
    # thresholds inf, 0.9 (1 pos), 0.5 (both tied items at once), 0.2 (last neg)
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.5, 0.2])
    np.testing.assert_allclose(fpr, [0.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(tpr, [0.0, 0.5, 1.0, 1.0])
    assert auroc(labels, scores) == pytest.approx(0.875)


def test_auroc_matches_pair_counting_on_random_ties() -> None:
    rng = np.random.default_rng(3)
    labels = rng.random(200) < 0.3
    scores = rng.integers(0, 8, size=200).astype(float)  # many ties
    pos, neg = scores[labels], scores[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert auroc(labels, scores) == pytest.approx(wins / (len(pos) * len(neg)))


def test_auroc_invariant_under_positive_affine_map() -> None:
    rng = np.random.default_rng(4)
    labels = rng.random(100) < 0.5
    scores = rng.random(100)
    assert auroc(labels, 3.5 * scores - 2.0) == pytest.approx(auroc(labels, scores))


def test_auroc_one_class_is_an_error() -> None:
    with pytest.raises(ValueError, match="only one class"):
        auroc(np.zeros(4), np.arange(4.0))
    with pytest.raises(ValueError, match="only one class"):
        auroc(np.ones(4), np.arange(4.0))


def test_auroc_rejects_nan_and_length_mismatch() -> None:
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, 1], [0.1, np.nan])
    with pytest.raises(ValueError, match="length"):
        auroc([0, 1, 1], [0.1, 0.2])


def _overlapping_scores(n_normal: int, n_anomalous: int, seed: int) -> tuple:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(n_normal), np.ones(n_anomalous)]
    scores = np.r_[rng.normal(0.0, 1.0, n_normal), rng.normal(1.0, 1.0, n_anomalous)]
    return labels, scores


def test_auroc_interval_brackets_the_estimate_and_shrinks_with_more_normals() -> None:
    labels, scores = _overlapping_scores(5, 35, seed=1)
    low, high = auroc_interval(labels, scores)
    assert low <= auroc(labels, scores) <= high
    big_labels, big_scores = _overlapping_scores(200, 200, seed=1)
    big_low, big_high = auroc_interval(big_labels, big_scores)
    assert big_low <= auroc(big_labels, big_scores) <= big_high
    assert big_high - big_low < (high - low) / 2  # 40× more pairs: a much tighter interval


def test_auroc_interval_is_deterministic_and_exact_for_separated_classes() -> None:
    labels, scores = _overlapping_scores(10, 10, seed=2)
    assert auroc_interval(labels, scores, seed=3) == auroc_interval(labels, scores, seed=3)
    separated = np.r_[np.zeros(10), np.ones(10) + 5.0]
    assert auroc_interval(labels, separated) == (1.0, 1.0)
    ties = np.zeros(20)  # every pair tied: exactly one half in every resample
    assert auroc_interval(labels, ties) == (0.5, 0.5)


def test_auroc_interval_rejects_one_class_and_bad_level() -> None:
    with pytest.raises(ValueError, match="only one class"):
        auroc_interval(np.zeros(4), np.arange(4.0))
    with pytest.raises(ValueError, match="level"):
        auroc_interval([0, 1], [0.0, 1.0], level=1.0)


def test_pixel_auroc_hand_case() -> None:
    # defect pixels score {0.9, 0.4}; normal pixels {0.1, 0.5}. Pairs: 0.9 beats both (2),
    # 0.4 beats 0.1 only (1): 3 of 4 pairs -> 0.75.
    gt = np.array([[1, 0], [1, 0]], dtype=bool)
    amap = np.array([[0.9, 0.1], [0.4, 0.5]], dtype=np.float32)
    assert pixel_auroc([gt], [amap]) == pytest.approx(0.75)


# ---------------------------------------------------------------- PRO / AUPRO


def _block_gt() -> np.ndarray:
    gt = np.zeros((4, 4), dtype=bool)
    gt[:2, :2] = True  # one 4-pixel region; 12 defect-free pixels
    return gt


def test_aupro_perfect_map_is_one() -> None:
    gt = _block_gt()
    # curve: (0,0) -> thr 1: (fpr 0, pro 1) -> thr 0: (1, 1); area to 0.3 = 0.3 -> 1.0
    fpr, pro, thr = pro_curve([gt], [gt.astype(np.float32)])
    np.testing.assert_allclose(fpr, [0, 0, 1])
    np.testing.assert_allclose(pro, [0, 1, 1])
    np.testing.assert_allclose(thr, [np.inf, 1, 0])
    assert aupro([gt], [gt.astype(np.float32)]) == pytest.approx(1.0)


def test_aupro_inverted_map_is_zero() -> None:
    gt = _block_gt()
    # thr 1: all 12 normal pixels pass, no defect pixel -> (1, 0); the curve is 0 up to fpr 1.
    assert aupro([gt], [(~gt).astype(np.float32)]) == pytest.approx(0.0)


def test_aupro_one_region_half_detected() -> None:
    gt = _block_gt()
    amap = np.zeros((4, 4), dtype=np.float32)
    amap[0, :2] = 1.0  # half of the region above everything
    amap[1, :2] = 0.5  # other half
    amap[3, 3] = 0.75  # one normal pixel between the halves
    # curve: (0,0) (0,.5) [thr 1] (1/12,.5) [thr .75] (1/12,1) [thr .5] (1,1) [thr 0]
    # area to 0.3 = 0.5 * 1/12 + 1 * (0.3 - 1/12) = 0.3 - 1/24 ; / 0.3 = 1 - 1/7.2
    fpr, pro, _ = pro_curve([gt], [amap])
    np.testing.assert_allclose(fpr, [0, 0, 1 / 12, 1 / 12, 1])
    np.testing.assert_allclose(pro, [0, 0.5, 0.5, 1, 1])
    assert aupro([gt], [amap]) == pytest.approx(1 - 1 / 7.2)


def test_pro_weighs_regions_equally_whatever_their_size() -> None:
    gt = np.zeros((6, 6), dtype=bool)
    gt[0, 0] = True  # region A: 1 pixel
    gt[3:5, 3:5] = True  # region B: 4 pixels
    only_small = np.where(np.arange(36).reshape(6, 6) == 0, 1.0, 0.0)
    only_large = gt & ~only_small.astype(bool)
    for amap in (only_small, only_large.astype(float)):
        # thr 1: one of two regions fully found, no false positive -> PRO 0.5 (pixel recall
        # would be 1/5 or 4/5). Then thr 0 -> (1, 1). Area to 0.3 from (0, .5) to
        # (0.3, .65) = 0.3 * (0.5 + 0.65) / 2 = 0.1725 -> / 0.3 = 0.575.
        fpr, pro, _ = pro_curve([gt], [amap])
        np.testing.assert_allclose(pro, [0, 0.5, 1])
        assert aupro([gt], [amap]) == pytest.approx(0.575)


def test_pro_regions_are_8_connected() -> None:
    gt = np.zeros((6, 6), dtype=bool)
    gt[0, 0] = gt[1, 1] = True  # diagonal neighbours: one region with 8-connectivity
    gt[4, 4] = True  # a second region
    amap = np.zeros((6, 6))
    amap[0, 0] = 1.0
    # 8-connected: regions {2 px, half found} and {1 px, none}: PRO = (0.5 + 0) / 2 = 0.25
    # (4-connectivity would give three regions and (1 + 0 + 0) / 3).
    _, pro, _ = pro_curve([gt], [amap])
    assert pro[1] == pytest.approx(0.25)


def test_pro_regions_counted_over_the_whole_set() -> None:
    gt_a = np.zeros((4, 4), dtype=bool)
    gt_a[0, 0] = True
    gt_b = np.zeros((4, 4), dtype=bool)
    gt_b[1:3, 1:3] = True
    gt_good = np.zeros((4, 4), dtype=bool)  # a defect-free image adds only normal pixels
    maps = [gt_a * 1.0, np.zeros((4, 4)), np.zeros((4, 4))]
    # 2 regions in total, the 1-pixel one found: PRO 0.5 at fpr 0; 15 + 12 + 16 normal pixels
    fpr, pro, _ = pro_curve([gt_a, gt_b, gt_good], maps)
    np.testing.assert_allclose(pro, [0, 0.5, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1])


def test_aupro_invariant_under_positive_affine_map() -> None:
    rng = np.random.default_rng(5)
    gts = [rng.random((16, 16)) < 0.1 for _ in range(3)]
    maps = [rng.random((16, 16)) + g for g in gts]
    a, b = 2.5, -7.0
    assert aupro(gts, [a * m + b for m in maps]) == pytest.approx(aupro(gts, maps), abs=1e-12)


def test_aupro_errors() -> None:
    good = np.zeros((4, 4), dtype=bool)
    amap = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="no anomalous pixels: AUPRO undefined"):
        aupro([good, good], [amap, amap])
    with pytest.raises(ValueError, match="no defect-free pixels"):
        aupro([~good], [amap])
    with pytest.raises(ValueError, match="shape"):
        aupro([_block_gt()], [np.zeros((4, 5))])
    bad = amap.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        aupro([_block_gt()], [bad])
    with pytest.raises(ValueError, match="masks but"):
        aupro([_block_gt()], [amap, amap])
    with pytest.raises(ValueError, match="limit"):
        aupro([_block_gt()], [amap], limit=0.0)


def _brute_force_pro(gts, maps):
    """Reference: loop over every distinct threshold and count pixels directly."""
    structure = np.ones((3, 3), dtype=bool)  # 8-connectivity, via scipy rather than cv2
    regions = []  # (map, region mask) for every region of the whole set
    for gt, amap in zip(gts, maps, strict=True):
        labels, count = ndimage.label(gt, structure=structure)
        regions += [(amap, labels == i) for i in range(1, count + 1)]
    all_scores = np.concatenate([m.ravel() for m in maps])
    normal = np.concatenate([m[~g] for g, m in zip(gts, maps, strict=True)])
    fprs, pros = [0.0], [0.0]
    for t in np.unique(all_scores)[::-1]:
        fprs.append(np.mean(normal >= t))
        pros.append(np.mean([np.mean(amap[region] >= t) for amap, region in regions]))
    return np.array(fprs), np.array(pros)


def _brute_force_area(fpr, pro, limit):
    area = 0.0
    for i in range(1, len(fpr)):
        x0, x1, y0, y1 = fpr[i - 1], fpr[i], pro[i - 1], pro[i]
        if x0 >= limit:
            break
        if x1 > limit:  # cut the segment at the limit
            y1 = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            x1 = limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / limit


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_aupro_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    gts, maps = [], []
    for _ in range(3):
        gt = ndimage.binary_dilation(rng.random((12, 12)) < 0.04, iterations=1)
        gts.append(gt)
        # integer scores: plenty of ties between and within defect and normal pixels
        maps.append((rng.integers(0, 15, size=(12, 12)) + 4 * gt).astype(np.float32))
    fpr_ref, pro_ref = _brute_force_pro(gts, maps)
    fpr, pro, _ = pro_curve(gts, maps)
    np.testing.assert_allclose(fpr, fpr_ref, atol=1e-12)
    np.testing.assert_allclose(pro, pro_ref, atol=1e-12)
    for limit in (0.05, 0.3, 1.0):
        assert aupro(gts, maps, limit) == pytest.approx(_brute_force_area(fpr_ref, pro_ref, limit))


def test_pro_curve_accepts_a_stacked_array() -> None:
    rng = np.random.default_rng(7)
    gts = rng.random((4, 10, 10)) < 0.1
    maps = rng.random((4, 10, 10)).astype(np.float32)
    assert aupro(gts, maps) == pytest.approx(aupro(list(gts), list(maps)))
