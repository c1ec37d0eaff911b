"""Defect regions: connected components of the thresholded fused map, with per-region scores.

NumPy and OpenCV only (no torch): cheap enough to recompute for every threshold the user tries,
off the UI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import cv2
import numpy as np

from mdss_core.prediction import Prediction, Region, RegionSet

# A modality "drives" a region when its peak reaches this fraction of the other's peak.
DRIVER_RATIO = 0.7


def find_regions(
    fused: np.ndarray,
    rgb_aligned: np.ndarray,
    map_3d: np.ndarray,
    threshold: float,
    area_mm2: np.ndarray | Callable[[], np.ndarray] | None = None,
    min_area: int = 1,
) -> RegionSet:
    """8-connected regions of ``fused >= threshold``, each described by its scores.

    ``area_mm2``: each pixel's metric footprint (:func:`pixel_area_mm2`) for region areas in
    mm², or a function that computes it, called only when there is a region (most maps of
    normal parts have none).
    """
    binary = (fused >= threshold).astype(np.uint8)
    count, labels, boxes, centroids = cv2.connectedComponentsWithStats(
        binary, connectivity=8, ltype=cv2.CV_32S
    )
    if count <= 1:
        return RegionSet(float(threshold), labels)
    # One pass over all labelled pixels instead of a mask per region.
    on = labels.ravel() > 0
    ids = labels.ravel()[on]
    peaks, means = {}, {}
    for name, arr in (("rgb", rgb_aligned), ("3d", map_3d), ("fused", fused)):
        peaks[name], means[name] = _reduce(arr.ravel()[on], ids, count)
    mm2 = None
    if area_mm2 is not None:
        area = area_mm2() if callable(area_mm2) else area_mm2
        mm2 = np.bincount(ids, weights=area.ravel()[on], minlength=count)
    regions = []
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in boxes[label])
        if area < min_area:
            continue
        regions.append(
            Region(
                label=label,
                area_px=area,
                area_mm2=None if mm2 is None or mm2[label] <= 0 else float(mm2[label]),
                bbox=(y, x, y + h, x + w),
                centroid=(float(centroids[label][1]), float(centroids[label][0])),
                max_rgb=float(peaks["rgb"][label]),
                mean_rgb=float(means["rgb"][label]),
                max_3d=float(peaks["3d"][label]),
                mean_3d=float(means["3d"][label]),
                max_fused=float(peaks["fused"][label]),
                mean_fused=float(means["fused"][label]),
                driver=modality_driver(peaks["rgb"][label], peaks["3d"][label]),
            )
        )
    return RegionSet(float(threshold), labels, tuple(regions))


def regions_at(
    prediction: Prediction, threshold: float, area_mm2: np.ndarray | None = None
) -> RegionSet:
    """The prediction's regions at another pixel threshold (its own when the threshold is)."""
    if threshold == prediction.regions.threshold:
        return prediction.regions
    return find_regions(
        prediction.fused_map, prediction.rgb_map_aligned, prediction.map_3d, threshold, area_mm2
    )


def with_thresholds(
    prediction: Prediction,
    pixel_threshold: float | None = None,
    image_threshold: float | None = None,
) -> Prediction:
    """The same prediction judged with other thresholds: a new object, regions recomputed."""
    regions = (
        prediction.regions if pixel_threshold is None else regions_at(prediction, pixel_threshold)
    )
    image = prediction.image_threshold if image_threshold is None else float(image_threshold)
    return replace(prediction, image_threshold=image, regions=regions)


def modality_driver(max_rgb: float, max_3d: float) -> str:
    """Name the modality behind a region: the clearly stronger one, or both when close."""
    if max_3d < DRIVER_RATIO * max_rgb:
        return "colour"
    if max_rgb < DRIVER_RATIO * max_3d:
        return "geometry"
    return "both"


def local_scores(prediction: Prediction, row: int, col: int) -> dict[str, float]:
    """Scores at one pixel (what the inspector shows for a click outside any region)."""
    return {
        "rgb": float(prediction.rgb_map_aligned[row, col]),
        "rgb_raw": float(prediction.rgb_map[row, col]),
        "3d": float(prediction.map_3d[row, col]),
        "point": float(prediction.point_map[row, col]),
        "fused": float(prediction.fused_map[row, col]),
    }


def _reduce(values: np.ndarray, ids: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    peak = np.full(count, -np.inf)
    np.maximum.at(peak, ids, values)
    mean = np.bincount(ids, weights=values, minlength=count) / np.maximum(
        np.bincount(ids, minlength=count), 1
    )
    return peak, mean


def pixel_area_mm2(xyz: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Metric footprint of each pixel from neighbouring points (0 where the cloud has a gap or
    outside ``mask``): what region areas in mm² add up."""
    if mask is not None:
        xyz = np.where(mask[..., None], xyz, 0.0)
    # Per-coordinate arrays: ~3x faster than norms over the short last axis of (H, W, 3).
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    valid = (x != 0) | (y != 0) | (z != 0)
    both_x = valid[:, 1:] & valid[:, :-1]
    both_y = valid[1:, :] & valid[:-1, :]
    step_x = np.hypot(x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1])
    step_y = np.hypot(x[1:] - x[:-1], y[1:] - y[:-1])
    dx = np.zeros(valid.shape, np.float32)
    dy = np.zeros(valid.shape, np.float32)
    dx[:, 1:] = np.where(both_x, step_x, 0)
    dy[1:, :] = np.where(both_y, step_y, 0)
    # Use the median spacing for isolated points so a valid pixel never has zero area.
    mx = np.median(step_x[both_x]) if both_x.any() else 0.0
    my = np.median(step_y[both_y]) if both_y.any() else 0.0
    dx = np.where(valid & (dx == 0), mx, dx)
    dy = np.where(valid & (dy == 0), my, dy)
    return np.where(valid, dx * dy * 1e6, 0.0)  # m² → mm²


# A flagged part whose map stays below the pixel threshold reports the region around its peak:
# pixels above this fraction of the way from the part's median score to its peak.
PEAK_REGION_LEVEL = 0.5


def decision_regions(
    prediction: Prediction,
    regions: RegionSet | None = None,
    area_mm2: np.ndarray | Callable[[], np.ndarray] | None = None,
) -> RegionSet:
    """The defect regions a decision reports, so that decision and region count agree: none
    for a part judged normal (its spots below the image threshold are not defects); for a
    flagged part, the regions above the pixel threshold or, when the image score flagged it
    but no pixel reaches that threshold, the region around its peak (``threshold`` of the
    returned set is then the lower level that region was cut at)."""
    regions = prediction.regions if regions is None else regions
    if not prediction.is_anomalous:
        return RegionSet(regions.threshold, np.zeros_like(regions.labels))
    if len(regions):
        return regions
    fused = prediction.fused_map
    part = prediction.object_mask if prediction.object_mask.any() else np.ones_like(fused, bool)
    floor, peak = float(np.median(fused[part])), float(fused.max())
    level = floor + PEAK_REGION_LEVEL * (peak - floor)
    found = find_regions(fused, prediction.rgb_map_aligned, prediction.map_3d, level, area_mm2)
    row, col = np.unravel_index(int(np.argmax(fused)), fused.shape)
    region = found.at(int(row), int(col))
    if region is None:  # a constant map: nothing stands out
        return regions
    labels = np.where(found.labels == region.label, region.label, 0).astype(np.int32)
    return RegionSet(level, labels, (region,))
