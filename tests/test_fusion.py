"""Alignment (paper 3.3), image score, thresholds and defect regions."""

from __future__ import annotations

import numpy as np
import pytest

from mdss_core.fusion import Calibration, MapStats, calibrate, fuse_maps, image_score
from mdss_core.regions import find_regions, modality_driver, pixel_area_mm2


def test_alignment_maps_mean_pm_3std_of_rgb_onto_3d() -> None:
    cal = Calibration(MapStats(2.0, 0.5), MapStats(0.1, 0.02), 1.0, 1.0, 3)
    # RGB μ−3σ = 0.5 → 3D μ−3σ = 0.04; RGB μ+3σ = 3.5 → 3D μ+3σ = 0.16.
    aligned = cal.align_rgb(np.array([0.5, 3.5, 2.0, -1.0], np.float32))
    np.testing.assert_allclose(aligned, [0.04, 0.16, 0.1, 0.0], atol=1e-6)  # last one clipped ≥ 0
    assert cal.weight == pytest.approx(0.04) and cal.bias == pytest.approx(0.02)


def test_image_score_is_product_of_maxima_and_pixel_map_is_max() -> None:
    rgb = np.array([[1.0, 3.0], [2.0, 0.0]])
    sdf = np.array([[0.5, 0.1], [0.2, 0.25]])
    assert image_score(rgb, sdf) == pytest.approx(3.0 * 0.5)
    np.testing.assert_allclose(fuse_maps(rgb * 0.1, sdf), [[0.5, 0.3], [0.2, 0.25]], rtol=1e-6)


def test_calibration_uses_masked_pixels_and_upper_tail_thresholds() -> None:
    rng = np.random.default_rng(0)
    masks = [np.zeros((8, 8), bool) for _ in range(3)]
    for m in masks:
        m[2:6, 2:6] = True
    rgb = [np.where(m, rng.normal(5, 1, m.shape), 1000.0) for m in masks]  # background ignored
    sdf = [np.where(m, rng.normal(0.2, 0.05, m.shape), 0.0) for m in masks]
    cal = calibrate(rgb, sdf, masks)
    values = np.concatenate([r[m] for r, m in zip(rgb, masks, strict=True)])
    assert cal.rgb.mean == pytest.approx(values.mean()) and cal.rgb.std == pytest.approx(
        values.std()
    )
    scores = [image_score(r, s) for r, s in zip(rgb, sdf, strict=True)]
    assert cal.image_threshold == pytest.approx(max(scores))  # highest normal, never the lowest
    peaks = [
        fuse_maps(cal.align_rgb(r), s)[m].max() for r, s, m in zip(rgb, sdf, masks, strict=True)
    ]
    assert cal.pixel_threshold == pytest.approx(max(peaks))
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_regions_scores_area_and_driver() -> None:
    fused = np.zeros((20, 20), np.float32)
    rgb = np.zeros_like(fused)
    sdf = np.zeros_like(fused)
    rgb[2:5, 2:6] = 1.0  # a colour region, 12 px
    sdf[10:12, 10:12] = 2.0  # a geometry region, 4 px
    fused = fuse_maps(rgb, sdf)
    xyz = np.zeros((20, 20, 3), np.float32)
    yy, xx = np.mgrid[0:20, 0:20]
    xyz[..., 0], xyz[..., 1], xyz[..., 2] = xx * 1e-3, yy * 1e-3, 0.6  # 1 mm pixels
    found = find_regions(fused, rgb, sdf, 0.5, pixel_area_mm2(xyz))
    labels, regions = found.labels, found.regions
    assert len(regions) == 2
    colour = next(r for r in regions if r.driver == "colour")
    geometry = next(r for r in regions if r.driver == "geometry")
    assert colour.area_px == 12 and colour.bbox == (2, 2, 5, 6)
    assert colour.area_mm2 == pytest.approx(12.0, rel=1e-4)
    assert geometry.max_3d == 2.0 and geometry.mean_rgb == 0.0
    assert labels[3, 3] == colour.label and labels[0, 0] == 0
    assert modality_driver(1.0, 0.9) == "both"
