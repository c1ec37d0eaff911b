"""Preprocessing tests: plane removal, masks, resizing, the prepare() pipeline."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest

from mdss_core.errors import DataError
from mdss_core.preprocess import (
    PreprocessConfig,
    foreground_mask,
    prepare_arrays,
    remove_background_plane,
    resize_nearest,
    resize_rgb,
    valid_points_mask,
)
from mdss_core.preprocess.plane import _hypotheses_needed

# Tilted table z = 0.65 + 0.3 x - 0.2 y  ->  unit normal towards the camera ∝ (0.3, -0.2, -1)
TRUE_NORMAL = np.array([0.3, -0.2, -1.0]) / np.linalg.norm([0.3, -0.2, -1.0])


def synthetic_cloud(h: int = 60, w: int = 80, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Organized cloud of a tilted noisy table with a 2 cm high box in the middle.

    Returns the cloud and the box's pixel mask.
    """
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:h, 0:w]
    x = (u - w / 2) * 0.0005
    y = (v - h / 2) * 0.0005
    z = 0.65 + 0.3 * x - 0.2 * y + rng.normal(0, 0.0005, size=(h, w))
    box = np.zeros((h, w), dtype=bool)
    box[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3] = True
    z = np.where(box, z - 0.02, z)  # closer to the camera: on top of the table
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    holes = rng.random((h, w)) < 0.05
    xyz[holes] = 0.0
    return xyz, box & ~holes


# ---------------------------------------------------------------- plane removal


def test_plane_removal_keeps_the_object_and_erases_the_table() -> None:
    xyz, box = synthetic_cloud()
    before = xyz.copy()
    cleaned, plane = remove_background_plane(xyz)
    np.testing.assert_array_equal(xyz, before)  # input untouched
    assert cleaned.dtype == np.float32 and cleaned.shape == xyz.shape
    kept = valid_points_mask(cleaned)
    np.testing.assert_array_equal(kept, box)
    np.testing.assert_array_equal(cleaned[kept], xyz[kept])
    assert abs(float(np.dot(plane.normal, TRUE_NORMAL))) > 0.999
    assert plane.offset > 0  # normal faces the camera ...
    assert np.all(plane.signed_distance(cleaned[kept]) > 0)  # ... so the box is in front
    assert plane.inlier_fraction > 0.95


def test_ransac_ignores_clutter_on_the_border() -> None:
    xyz, _ = synthetic_cloud(seed=1)
    # 25 % of the top strip is clutter 3 cm above the table: least squares would tilt the
    # plane, RANSAC must not.
    clutter = np.zeros(xyz.shape[:2], dtype=bool)
    clutter[:10, :20] = True
    xyz[clutter, 2] -= 0.03
    cleaned, plane = remove_background_plane(xyz)
    assert abs(float(np.dot(plane.normal, TRUE_NORMAL))) > 0.999
    assert valid_points_mask(cleaned)[clutter & valid_points_mask(xyz)].all()


def test_ransac_keeps_drawing_while_the_border_is_mostly_clutter() -> None:
    # 40 % of the border points lie on a second, parallel surface 3 cm above the table: the
    # adaptive stop must not settle before a triple on the true (largest) plane was drawn.
    xyz, _ = synthetic_cloud(h=60, w=80, seed=4)
    border = np.zeros(xyz.shape[:2], dtype=bool)
    border[:10], border[-10:], border[:, :10], border[:, -10:] = True, True, True, True
    rng = np.random.default_rng(0)
    clutter = border & (rng.random(border.shape) < 0.4)
    xyz[clutter, 2] -= 0.03
    _, plane = remove_background_plane(xyz)
    assert abs(float(np.dot(plane.normal, TRUE_NORMAL))) > 0.999
    assert 0.5 < plane.inlier_fraction < 0.7


def test_hypotheses_needed_follows_the_ransac_bound() -> None:
    assert _hypotheses_needed(1.0) == 1.0
    assert _hypotheses_needed(0.0) == math.inf
    # (1 - 0.5³)^n = 0.001  ->  n = ln 0.001 / ln 0.875 ≈ 51.7
    assert _hypotheses_needed(0.5) == pytest.approx(51.7, abs=0.1)
    assert _hypotheses_needed(0.9) < _hypotheses_needed(0.5)


def test_valid_points_mask_matches_its_definition() -> None:
    xyz = np.array(
        [
            [[0, 0, 0], [0, 0, 1e-30], [-0.0, 0, 0], [np.nan, 1, 1]],
            [[1, np.inf, 1], [1, 1, -np.inf], [0.2, -0.1, 0.6], [0, 3, 0]],
        ],
        dtype=np.float32,
    )
    expected = np.all(np.isfinite(xyz), axis=-1) & np.any(xyz != 0, axis=-1)
    np.testing.assert_array_equal(valid_points_mask(xyz), expected)
    np.testing.assert_array_equal(
        valid_points_mask(xyz), [[False, True, False, False], [False, False, True, True]]
    )


def test_plane_falls_back_to_all_points_when_the_border_is_empty() -> None:
    xyz, box = synthetic_cloud(seed=2)
    xyz[:12] = 0
    xyz[-12:] = 0
    xyz[:, :12] = 0
    xyz[:, -12:] = 0
    cleaned, plane = remove_background_plane(xyz, border=10)
    assert abs(float(np.dot(plane.normal, TRUE_NORMAL))) > 0.999
    np.testing.assert_array_equal(valid_points_mask(cleaned), box & valid_points_mask(xyz))


def test_plane_removal_is_deterministic_and_treats_nan_as_missing() -> None:
    xyz, _ = synthetic_cloud(seed=3)
    xyz[5, 5] = np.nan
    a, plane_a = remove_background_plane(xyz, seed=7)
    b, plane_b = remove_background_plane(xyz, seed=7)
    np.testing.assert_array_equal(a, b)
    assert plane_a == plane_b
    assert np.all(a[5, 5] == 0)


def test_plane_removal_rejects_empty_or_malformed_clouds() -> None:
    with pytest.raises(ValueError, match="no valid points"):
        remove_background_plane(np.zeros((20, 20, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        remove_background_plane(np.zeros((20, 20), dtype=np.float32))


# ---------------------------------------------------------------- masks and resizing


def test_foreground_mask_dilates_with_an_8x8_square() -> None:
    valid = np.zeros((32, 32), dtype=bool)
    valid[16, 16] = True
    mask = foreground_mask(valid, dilation=8)
    assert mask.sum() == 64
    rows, cols = np.nonzero(mask)
    assert np.ptp(rows) == 7 and np.ptp(cols) == 7
    np.testing.assert_array_equal(foreground_mask(valid, dilation=1), valid)


def test_foreground_mask_from_a_cloud() -> None:
    xyz = np.zeros((10, 10, 3), dtype=np.float32)
    xyz[2, 3] = (0.1, 0.2, 0.6)
    mask = foreground_mask(xyz, dilation=0)
    assert mask.dtype == bool and mask.sum() == 1 and mask[2, 3]
    with pytest.raises(ValueError, match="shape"):
        foreground_mask(np.zeros((4, 4, 2)))


def test_resize_nearest_never_blends_points_with_missing_ones() -> None:
    rng = np.random.default_rng(0)
    xyz = rng.random((37, 53, 3)).astype(np.float32) + 0.5
    xyz[(np.indices((37, 53)).sum(axis=0) % 2) == 0] = 0  # checkerboard of missing points
    out = resize_nearest(xyz, 16)
    assert out.shape == (16, 16, 3) and out.dtype == np.float32
    source = {tuple(p) for p in xyz.reshape(-1, 3)}
    assert all(tuple(p) in source for p in out.reshape(-1, 3))


def test_resize_nearest_picks_the_cell_under_each_centre() -> None:
    labels = np.arange(16).reshape(4, 4)
    # shrink 2x: output cell i is centred on input coordinate 2i + 1
    np.testing.assert_array_equal(resize_nearest(labels, 2), [[5, 7], [13, 15]])
    # grow 2x: each input cell becomes a 2x2 block
    np.testing.assert_array_equal(resize_nearest(labels, 8), np.kron(labels, np.ones((2, 2))))
    mask = resize_nearest(labels > 7, 2)
    assert mask.dtype == bool


def test_resize_rgb_averages_when_shrinking() -> None:
    board = (np.indices((64, 96)).sum(axis=0) % 2 * 255).astype(np.uint8)
    rgb = np.repeat(board[..., None], 3, axis=2)
    out = resize_rgb(rgb, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    # area averaging of a fine checkerboard gives mid grey (nearest would give 0 or 255)
    assert np.all(np.abs(out.astype(int) - 128) <= 2)
    with pytest.raises(ValueError, match="positive integer"):
        resize_rgb(rgb, 0)


# ---------------------------------------------------------------- prepare_arrays()


def _rgb_like(xyz: np.ndarray) -> np.ndarray:
    return (valid_points_mask(xyz)[..., None] * np.array([200, 120, 40])).astype(np.uint8)


def test_prepare_builds_consistent_model_inputs() -> None:
    xyz, box = synthetic_cloud(h=60, w=80)
    rgb = _rgb_like(xyz)
    gt = np.zeros((60, 80), dtype=np.uint8)
    gt[25:30, 35:40] = 255
    config = PreprocessConfig(size=32, mask_dilation=3)
    xyz_before = xyz.copy()
    s = prepare_arrays(rgb, xyz, gt, config)
    np.testing.assert_array_equal(xyz, xyz_before)
    assert s.size == 32 and s.original_shape == (60, 80)
    assert s.rgb.shape == (32, 32, 3) and s.rgb.dtype == np.uint8
    assert s.xyz.shape == (32, 32, 3) and s.xyz.dtype == np.float32
    assert s.gt is not None and s.gt.dtype == bool and s.gt.any()
    np.testing.assert_array_equal(s.object_mask_full, box)
    np.testing.assert_array_equal(s.object_mask, resize_nearest(box, 32))
    assert np.all(s.foreground_mask[s.object_mask])
    assert s.foreground_mask.sum() > s.object_mask.sum()
    assert s.points.dtype == np.float32 and s.pixel_index.dtype == np.int64
    np.testing.assert_array_equal(s.points, s.xyz.reshape(-1, 3)[s.pixel_index])
    np.testing.assert_array_equal(s.points, s.xyz[s.object_mask])
    assert s.plane is not None
    assert json.loads(json.dumps(asdict(config))) == asdict(config)


def test_prepare_without_plane_removal_keeps_every_point() -> None:
    xyz, _ = synthetic_cloud()
    s = prepare_arrays(_rgb_like(xyz), xyz, None, PreprocessConfig(size=40, remove_plane=False))
    np.testing.assert_array_equal(s.object_mask_full, valid_points_mask(xyz))
    assert s.gt is None and s.plane is None


def test_prepare_reports_bad_input_naming_the_sample() -> None:
    xyz, _ = synthetic_cloud()
    rgb = _rgb_like(xyz)
    with pytest.raises(DataError, match=r"^sample_7: image size"):
        prepare_arrays(rgb[:-1], xyz, None, PreprocessConfig(size=16), source="sample_7")
    with pytest.raises(DataError, match="ground truth size"):
        prepare_arrays(rgb, xyz, np.zeros((3, 3)), PreprocessConfig(size=16))
    with pytest.raises(DataError, match="uint8"):
        prepare_arrays(rgb.astype(np.float32), xyz, None, PreprocessConfig(size=16))
    flat = xyz.copy()
    flat[..., 2] = 0.65  # a bare table: nothing survives plane removal
    with pytest.raises(DataError, match="no points left"):
        prepare_arrays(rgb, flat, None, PreprocessConfig(size=16))
    with pytest.raises(DataError, match="no valid points"):
        prepare_arrays(rgb, np.zeros_like(xyz), None, PreprocessConfig(size=16))


@pytest.mark.parametrize("sample", ["test/hole/000", "test/good/001"])
def test_real_sample_keeps_only_the_object(real_data_root: Path, sample: str) -> None:
    tifffile = pytest.importorskip("tifffile")
    split, name = sample.rsplit("/", 1)
    xyz = tifffile.imread(real_data_root / split / "xyz" / f"{name}.tiff")
    rgb = cv2.cvtColor(
        cv2.imread(str(real_data_root / split / "rgb" / f"{name}.png")), cv2.COLOR_BGR2RGB
    )
    gt = cv2.imread(str(real_data_root / split / "gt" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
    s = prepare_arrays(rgb, xyz, gt, PreprocessConfig(size=256))
    kept = s.object_mask_full
    valid = valid_points_mask(xyz)
    # The table fills most of the view; the cable gland is a quarter to a third of it.
    assert 0.15 < kept.sum() / valid.sum() < 0.45
    assert not kept[:10].any() and not kept[-10:].any()  # border strips are all table
    _, labels, stats, _ = cv2.connectedComponentsWithStats(kept.astype(np.uint8), connectivity=8)
    assert stats[1:, cv2.CC_STAT_AREA].max() / kept.sum() > 0.98  # one object, little debris
    defect = (gt > 0) & valid
    if defect.any():  # defects lie on the object: none of their points may be erased
        assert kept[defect].mean() > 0.99
    assert 5000 < len(s.points) < 20000


def test_normal_image_of_a_tilted_plane() -> None:
    from mdss_core.preprocess.normals import normal_image

    y, x = np.mgrid[0:32, 0:32].astype(np.float32) * 1e-3
    z = 0.5 + 0.5 * x  # tilted about the y axis, facing the camera at the origin
    xyz = np.stack([x, y, z], axis=-1)
    valid = np.ones((32, 32), dtype=bool)
    valid[10:14, 10:14] = False  # a hole
    image = normal_image(xyz, valid)
    expected = np.array([0.5, 0.0, -1.0]) / np.linalg.norm([0.5, 0.0, -1.0])
    inner = image[2:8, 2:8].reshape(-1, 3).astype(float) / 127.5 - 1.0
    np.testing.assert_allclose(inner, np.broadcast_to(expected, inner.shape), atol=0.02)
    assert (image[10:14, 10:14] == 0).all()  # no point, no normal
    with pytest.raises(ValueError, match="H×W×3"):
        normal_image(xyz[..., :2], valid)
