"""One sample from sensor arrays to model-size inputs (paper 4.2).

Order: background plane removal at the original resolution → nearest resize to the square
model size → object mask (points left) and foreground mask (object mask dilated at model size,
8×8 at 256² as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdss_core.config_base import ConfigBase
from mdss_core.errors import DataError
from mdss_core.io.sample import Sample
from mdss_core.preprocess.mask import foreground_mask
from mdss_core.preprocess.plane import Plane, remove_background_plane, valid_points_mask
from mdss_core.preprocess.resize import resize_nearest, resize_rgb


@dataclass
class PreprocessConfig(ConfigBase):
    """Preprocessing settings."""

    size: int = 256
    plane_distance: float = 0.005
    plane_border: int = 10
    mask_dilation: int = 8
    remove_plane: bool = True


@dataclass
class PreparedSample:
    """A sample ready for both branches. S = ``size``; (H, W) = ``original_shape``."""

    size: int
    original_shape: tuple[int, int]
    rgb: np.ndarray  # uint8 (S, S, 3)
    xyz: np.ndarray  # float32 (S, S, 3), plane removed, (0, 0, 0) = missing
    object_mask: np.ndarray  # bool (S, S): points left after plane removal
    foreground_mask: np.ndarray  # bool (S, S): object mask dilated, for the RGB loss
    gt: np.ndarray | None  # bool (S, S)
    points: np.ndarray  # float32 (N, 3) = xyz[object_mask]
    pixel_index: np.ndarray  # int64 (N,): flat index into S×S of each point
    object_mask_full: np.ndarray  # bool (H, W): cleaned cloud's points at original resolution
    plane: Plane | None = None  # the removed background plane, None when not removed


def _check_inputs(
    rgb: np.ndarray, xyz: np.ndarray, gt: np.ndarray | None, source: str | Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    rgb = np.asarray(rgb)
    xyz = np.asarray(xyz)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise DataError(source, f"point cloud must have shape (H, W, 3), got {xyz.shape}")
    if rgb.ndim == 2:  # grey-scale capture: the RGB branch expects three channels
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(source, f"image must have shape (H, W, 3), got {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DataError(source, f"image must be uint8, got {rgb.dtype}")
    if rgb.shape[:2] != xyz.shape[:2]:
        raise DataError(
            source, f"image size {rgb.shape[:2]} differs from point cloud size {xyz.shape[:2]}"
        )
    if gt is not None:
        gt = np.asarray(gt)
        if gt.ndim == 3:  # a mask saved with colour channels: any channel marks a defect
            gt = gt.any(axis=2)
        if gt.shape != xyz.shape[:2]:
            raise DataError(
                source, f"ground truth size {gt.shape} differs from cloud size {xyz.shape[:2]}"
            )
    return rgb, xyz, gt


def prepare(sample: Sample, config: PreprocessConfig) -> PreparedSample:
    """Preprocess a loaded sample for both branches; errors name its point cloud file.

    The ground truth is left out: prediction and training never look at it at model size
    (evaluation compares maps with it at the sample's own resolution).
    """
    return prepare_arrays(sample.rgb, sample.xyz, None, config, sample.ref.xyz_path)


def prepare_arrays(
    rgb: np.ndarray,
    xyz: np.ndarray,
    gt: np.ndarray | None,
    config: PreprocessConfig,
    source: str | Path = "sample",
) -> PreparedSample:
    """Preprocess one sample's arrays; ``source`` only names the sample in error messages.

    Raises :class:`DataError` for inconsistent arrays, an empty cloud, or a cloud with no
    point left after plane removal.
    """
    rgb, xyz, gt = _check_inputs(rgb, xyz, gt, source)
    size = config.size
    valid_full = valid_points_mask(xyz)
    if not valid_full.any():
        raise DataError(source, "point cloud has no valid points")

    plane: Plane | None = None
    if config.remove_plane:
        try:
            cleaned, plane = remove_background_plane(
                xyz, distance=config.plane_distance, border=config.plane_border
            )
        except ValueError as exc:  # e.g. fewer than 3 points: no plane can be fitted
            raise DataError(source, str(exc)) from exc
    else:
        cleaned = np.where(valid_full[..., None], xyz, 0).astype(np.float32)
    object_mask_full = valid_points_mask(cleaned)
    if not object_mask_full.any():
        raise DataError(source, "no points left after background plane removal")

    xyz_small = resize_nearest(cleaned, size)
    object_mask = valid_points_mask(xyz_small)
    if not object_mask.any():
        raise DataError(source, f"no object points left after resizing to {size}x{size}")
    pixel_index = np.flatnonzero(object_mask).astype(np.int64)
    return PreparedSample(
        size=size,
        original_shape=(int(xyz.shape[0]), int(xyz.shape[1])),
        rgb=resize_rgb(rgb, size),
        xyz=xyz_small,
        object_mask=object_mask,
        foreground_mask=foreground_mask(object_mask, config.mask_dilation),
        gt=None if gt is None else resize_nearest(gt > 0, size),
        points=xyz_small.reshape(-1, 3)[pixel_index],
        pixel_index=pixel_index,
        object_mask_full=object_mask_full,
        plane=plane,
    )
