"""Preprocessing: background plane removal, masks, resizing, point patches."""

from mdss_core.preprocess.mask import foreground_mask
from mdss_core.preprocess.patches import farthest_point_sampling, make_patches
from mdss_core.preprocess.pipeline import (
    PreparedSample,
    PreprocessConfig,
    prepare,
    prepare_arrays,
)
from mdss_core.preprocess.plane import (
    Plane,
    fit_plane_ransac,
    remove_background_plane,
    valid_points_mask,
)
from mdss_core.preprocess.resize import resize_nearest, resize_rgb

__all__ = [
    "Plane",
    "PreparedSample",
    "PreprocessConfig",
    "farthest_point_sampling",
    "fit_plane_ransac",
    "foreground_mask",
    "make_patches",
    "prepare",
    "prepare_arrays",
    "remove_background_plane",
    "resize_nearest",
    "resize_rgb",
    "valid_points_mask",
]
