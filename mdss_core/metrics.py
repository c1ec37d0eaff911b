"""Evaluation metrics: ROC / AUROC (image and pixel level), PRO curve and AUPRO.

All curves are exact: every distinct score is a threshold, and pixels (or images) with equal
scores cross a threshold together, so tied scores make one step of the curve (as sklearn's
``roc_curve`` and the exact PRO variant of MVTec 3D-AD's evaluation; no coarse threshold grid).
A score "passes" a threshold when ``score >= threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

ArrayStack = Sequence[np.ndarray] | np.ndarray


def _step_ends(sorted_desc: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of equal values in a descending array."""
    change = sorted_desc[1:] != sorted_desc[:-1]
    return np.append(np.flatnonzero(change), len(sorted_desc) - 1)


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)``, thresholds descending, starting at (0, 0, +inf).

    ``labels`` are truthy for anomalous (positive) items. Raises ``ValueError`` when only one
    class is present, the lengths differ, or a score is NaN.
    """
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels ({y.size}) and scores ({s.size}) differ in length")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        kind = "anomalous" if positives == 0 else "normal"
        raise ValueError(f"only one class present (no {kind} items): ROC/AUROC undefined")
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted = s[order]
    true_pos = np.cumsum(y[order], dtype=np.int64)
    ends = _step_ends(s_sorted)
    tp = true_pos[ends]
    fp = ends + 1 - tp
    fpr = np.concatenate([[0.0], fp / negatives])
    tpr = np.concatenate([[0.0], tp / positives])
    thresholds = np.concatenate([[np.inf], s_sorted[ends]])
    return fpr, tpr, thresholds


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (trapezoid over the exact curve; ties count one half)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def auroc_interval(
    labels: np.ndarray,
    scores: np.ndarray,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUROC, resampling images within each class.

    Why: with the few normal test images an inspection set usually has, one unlucky normal
    image moves the I-AUROC a lot; the interval says how far the number can be trusted.
    Normal and anomalous images are resampled separately (stratified), so every resample
    keeps both classes. Each resample's AUROC is the Mann-Whitney statistic (ties count one
    half), which equals :func:`auroc` on the same data. Deterministic for a given ``seed``.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    auroc(labels, scores)  # same validation (lengths, NaN, both classes) and messages
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    positive, negative = s[y], s[~y]
    # wins[i, j]: how much anomalous image i beats normal image j (1, ½ for a tie, 0).
    wins = (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])
    rng = np.random.default_rng(seed)
    # How often each image is drawn in each resample (multinomial = sampling with replacement).
    pos_counts = _draw_counts(rng, len(positive), resamples)
    neg_counts = _draw_counts(rng, len(negative), resamples)
    values = ((pos_counts @ wins) * neg_counts).sum(axis=1) / (len(positive) * len(negative))
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def _draw_counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)


def _as_list(arrays: ArrayStack, what: str) -> list[np.ndarray]:
    items = [np.asarray(a) for a in arrays]
    if not items:
        raise ValueError(f"no {what} given")
    return items


def _check_pairs(gt_masks: ArrayStack, maps: ArrayStack) -> tuple[list, list, np.dtype]:
    masks = _as_list(gt_masks, "ground-truth masks")
    amaps = _as_list(maps, "anomaly maps")
    if len(masks) != len(amaps):
        raise ValueError(f"{len(masks)} ground-truth masks but {len(amaps)} anomaly maps")
    for i, (mask, amap) in enumerate(zip(masks, amaps, strict=True)):
        if mask.ndim != 2 or mask.shape != amap.shape:
            raise ValueError(
                f"ground-truth mask {i} has shape {mask.shape} but its anomaly map {amap.shape}"
            )
        if not np.all(np.isfinite(amap)):
            raise ValueError(f"anomaly map {i} contains NaN or infinite values")
    # float32 keeps 100 maps of 400² small; float64 input keeps its precision (no new ties).
    dtype = np.float64 if any(a.dtype == np.float64 for a in amaps) else np.float32
    return masks, amaps, np.dtype(dtype)


def pixel_auroc(gt_masks: ArrayStack, anomaly_maps: ArrayStack) -> float:
    """AUROC over all pixels of all maps (defect pixels positive)."""
    masks, amaps, dtype = _check_pairs(gt_masks, anomaly_maps)
    labels = np.concatenate([(m > 0).ravel() for m in masks])
    scores = np.concatenate([a.astype(dtype, copy=False).ravel() for a in amaps])
    return auroc(labels, scores)


def pro_curve(
    gt_masks: ArrayStack, anomaly_maps: ArrayStack
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact PRO curve ``(fpr, pro, thresholds)``, thresholds descending from +inf.

    Regions are the 8-connected components of each mask (``> 0``), over the whole set. At a
    threshold, PRO is the mean over regions of the fraction of the region's pixels scoring
    ``>= threshold`` (each region weighs the same whatever its size) and FPR the fraction of all
    defect-free pixels scoring ``>= threshold``. One sort of all pixels; each defect pixel adds
    ``1 / (regions · region size)`` to a running sum, so no per-threshold loop is needed.
    """
    return _pro_steps(gt_masks, anomaly_maps, max_fpr=None)


def _pro_steps(
    gt_masks: ArrayStack, anomaly_maps: ArrayStack, max_fpr: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PRO curve; with ``max_fpr`` it stops at the first step whose FPR reaches ``max_fpr``.

    Continuous maps have about one threshold per pixel, so stopping early keeps AUPRO's arrays
    at a fraction of the full curve's size.
    """
    masks, amaps, dtype = _check_pairs(gt_masks, anomaly_maps)
    total = sum(m.size for m in masks)
    scores = np.empty(total, dtype=dtype)
    region = np.empty(total, dtype=np.int32)  # 0 = defect-free, 1.. = global region id
    start = 0
    regions = 0
    for mask, amap in zip(masks, amaps, strict=True):
        stop = start + mask.size
        scores[start:stop] = amap.ravel()
        count, labels = cv2.connectedComponents((mask > 0).astype(np.uint8), connectivity=8)
        labels = labels.ravel()
        region[start:stop] = np.where(labels > 0, labels + regions, 0)
        regions += count - 1
        start = stop
    if regions == 0:
        raise ValueError("no anomalous pixels: AUPRO undefined")
    sizes = np.bincount(region, minlength=regions + 1)
    normal_pixels = int(sizes[0])
    if normal_pixels == 0:
        raise ValueError("no defect-free pixels: PRO false positive rate undefined")
    weight = np.zeros(regions + 1, dtype=np.float64)
    weight[1:] = 1.0 / (regions * sizes[1:])

    descending = np.argsort(scores)[::-1]
    scores = scores[descending]
    region = region[descending]
    del descending
    count_dtype = np.int32 if total < 2**31 else np.int64
    normal_seen = np.cumsum(region == 0, dtype=count_dtype)
    length = total
    if max_fpr is not None:
        first = int(np.searchsorted(normal_seen, max_fpr * normal_pixels, side="left"))
        if first < total:
            # Keep that pixel's whole tie group: equal scores cross the threshold together.
            length = total - int(np.searchsorted(scores[::-1], scores[first], side="left"))
    scores, region, normal_seen = scores[:length], region[:length], normal_seen[:length]

    ends = _step_ends(scores)
    thresholds = scores[ends].astype(np.float64)
    del scores
    false_pos = normal_seen[ends]
    del normal_seen
    overlap = weight[region]
    del region
    np.cumsum(overlap, out=overlap)  # in place: this array can hold tens of millions of pixels
    overlap = overlap[ends]
    fpr = np.concatenate([[0.0], false_pos / normal_pixels])
    pro = np.concatenate([[0.0], np.minimum(overlap, 1.0)])  # clip float summation drift
    return fpr, pro, np.concatenate([[np.inf], thresholds])


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under (x, y), x non-decreasing from 0, up to ``x = limit``.

    The segment crossing ``limit`` is cut there by linear interpolation.
    """
    inside = int(np.searchsorted(x, limit, side="right"))  # points with x <= limit
    area = float(np.trapezoid(y[:inside], x[:inside]))
    if inside < len(x) and x[inside - 1] < limit:
        x0, x1 = x[inside - 1], x[inside]
        y0, y1 = y[inside - 1], y[inside]
        y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += 0.5 * (y0 + y_limit) * (limit - x0)
    return area


def aupro(gt_masks: ArrayStack, anomaly_maps: ArrayStack, limit: float = 0.3) -> float:
    """Normalised area under the exact PRO curve for FPR in [0, ``limit``] (1.0 is perfect)."""
    if not 0.0 < limit <= 1.0:
        raise ValueError(f"FPR limit must be in (0, 1], got {limit}")
    fpr, pro, _ = _pro_steps(gt_masks, anomaly_maps, max_fpr=limit)
    return _area_up_to(fpr, pro, limit) / limit
