"""Foreground mask for the RGB branch (paper 4.2, after AST): valid points, dilated."""

from __future__ import annotations

import cv2
import numpy as np

from mdss_core.preprocess.plane import valid_points_mask


def foreground_mask(xyz_or_valid: np.ndarray, dilation: int = 8) -> np.ndarray:
    """Boolean (H, W) mask: True where the cloud has a point, dilated by a square element.

    ``xyz_or_valid`` is either an organized cloud (H, W, 3) — a point is valid when finite and
    not (0, 0, 0) — or an (H, W) validity mask. The dilation with a ``dilation × dilation``
    square fills the sensor's small holes on the object (the paper uses 8 at 256²); ``dilation``
    ≤ 1 returns the validity mask unchanged.
    """
    arr = np.asarray(xyz_or_valid)
    if arr.ndim == 3 and arr.shape[2] == 3:
        valid = valid_points_mask(arr)
    elif arr.ndim == 2:
        valid = arr.astype(bool)
    else:
        raise ValueError(f"expected an (H, W, 3) cloud or an (H, W) mask, got shape {arr.shape}")
    if dilation <= 1:
        return valid.copy()
    kernel = np.ones((dilation, dilation), dtype=np.uint8)
    return cv2.dilate(valid.astype(np.uint8), kernel).astype(bool)
