"""From one sample's branch maps (model size) to its Prediction at the sample's own resolution.

Resize, align the RGB map onto the 3D scale, fuse, score and find the regions: numpy and
OpenCV only, so it runs wherever the maps are (no torch).
"""

from __future__ import annotations

import time
from dataclasses import replace

import cv2
import numpy as np

from mdss_core.fusion import Calibration
from mdss_core.prediction import BranchMaps, Prediction
from mdss_core.preprocess.ready import ReadySample
from mdss_core.regions import find_regions, pixel_area_mm2
from mdss_core.roi import Roi, mask_branch_maps


def assemble(
    ready: ReadySample,
    maps: BranchMaps,
    calibration: Calibration,
    branches_ms: float,
    roi: Roi | None = None,
) -> Prediction:
    """Full-resolution maps, fusion, regions and scores of one sample.

    ``branches_ms`` is the sample's share of the network time (recorded in ``timings_ms``).
    With an ``roi``, every map is zero outside it before anything is scored: the one place
    the CLI, the GUI, exports and evaluation all get their maps from.
    """
    start = time.perf_counter()
    sample, prepared = ready.sample, ready.prepared
    h, w = sample.shape
    inside = None if roi is None else roi.mask(h, w)
    if roi is not None:
        maps = mask_branch_maps(maps, roi.mask(*maps.rgb.shape))
    rgb_map = _cut(_resize(maps.rgb, h, w), inside)
    normal_map = None if maps.normals is None else _cut(_resize(maps.normals, h, w), inside)
    # Scores from the model-size maps (the scale calibration measured), maps at full size.
    scores = calibration.fuse(maps.rgb, maps.sdf, maps.normals)
    full = calibration.fuse(rgb_map, _cut(_resize(maps.sdf, h, w), inside), normal_map)
    if inside is not None:  # alignment or z-scores move zero off zero: cut after fusing too
        full = replace(
            full, rgb=_cut(full.rgb, inside), geometry=_cut(full.geometry, inside),
            fused=_cut(full.fused, inside),
        )  # fmt: skip
    object_mask = prepared.object_mask_full
    point_map = cv2.resize(maps.point_grid, (w, h), interpolation=cv2.INTER_NEAREST)
    point_map = calibration.point_scale(point_map, normal_map)
    point_map = np.where(object_mask, point_map, 0.0).astype(np.float32)
    point_map = _cut(point_map, inside)
    area = lambda: pixel_area_mm2(sample.xyz, object_mask)  # noqa: E731
    regions = find_regions(full.fused, full.rgb, full.geometry, calibration.pixel_threshold, area)
    fusion_ms = 1e3 * (time.perf_counter() - start)
    return Prediction(
        sample_key=sample.ref.key,
        rgb_map=rgb_map,
        rgb_map_aligned=full.rgb,
        map_3d=full.geometry,
        point_map=point_map,
        object_mask=object_mask,
        fused_map=full.fused,
        score_rgb=scores.score_rgb,
        score_3d=scores.score_geometry,
        score_fused=scores.score_fused,
        image_threshold=calibration.image_threshold,
        regions=regions,
        timings_ms={
            "preprocess": ready.preprocess_ms,
            "branches": branches_ms,
            "fusion": fusion_ms,
            "total": ready.preprocess_ms + branches_ms + fusion_ms,
        },
        normal_map=normal_map,
    )


def _cut(values: np.ndarray, inside: np.ndarray | None) -> np.ndarray:
    """``values`` with zero outside ``inside`` (unchanged without an ROI)."""
    if inside is None:
        return values
    return np.where(inside, values, 0.0).astype(np.float32)


def _resize(image: np.ndarray, h: int, w: int) -> np.ndarray:
    if image.shape == (h, w):
        return image.astype(np.float32, copy=False)
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
