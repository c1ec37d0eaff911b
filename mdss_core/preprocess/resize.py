"""Resizing to the square model size.

The aspect ratio is not kept (as in the paper and Shape-guided): an H×W sample becomes S×S.
Point clouds, masks and ground truth use nearest neighbour so a valid point is never blended
with a missing (0, 0, 0) one and labels stay labels.
"""

from __future__ import annotations

import cv2
import numpy as np


def _check_size(size: int) -> int:
    if int(size) != size or size < 1:
        raise ValueError(f"model size must be a positive integer, got {size!r}")
    return int(size)


def resize_rgb(rgb: np.ndarray, size: int) -> np.ndarray:
    """Resize an (H, W, C) or (H, W) image to (size, size[, C]); aspect ratio is not kept.

    Area averaging when the image shrinks (no aliasing), bilinear when it grows.
    """
    size = _check_size(size)
    img = np.asarray(rgb)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (H, W, C), got {img.shape}")
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img.copy()
    shrinking = size * size < h * w
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interpolation)


def nearest_indices(length: int, size: int) -> np.ndarray:
    """Source index of each of ``size`` output cells: the input cell under its centre."""
    centres = (np.arange(size) + 0.5) * (length / size)
    return np.minimum(centres.astype(np.int64), length - 1)


def resize_nearest(arr: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of (H, W, ...) of any dtype to (size, size, ...).

    Every output cell copies exactly one input cell (the one under its centre), so clouds,
    boolean masks and label images keep only values that were there. Aspect is not kept.
    """
    size = _check_size(size)
    a = np.asarray(arr)
    if a.ndim < 2:
        raise ValueError(f"array must have at least 2 dimensions, got shape {a.shape}")
    rows = nearest_indices(a.shape[0], size)
    cols = nearest_indices(a.shape[1], size)
    return a[rows[:, None], cols[None, :]]
