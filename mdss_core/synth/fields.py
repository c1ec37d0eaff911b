"""Procedural building blocks: smooth random fields, soft steps and irregular blob distances."""

from __future__ import annotations

import cv2
import numpy as np


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below ``edge0``, 1 above ``edge1``, a C1-smooth ramp between (works for edge0 > edge1)."""
    u = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def smooth_noise(rng: np.random.Generator, size: int, correlation_px: float) -> np.ndarray:
    """A (size, size) float32 random field, zero mean and unit std, smooth over ``correlation_px``.

    Drawn on a coarse grid and upsampled bicubically: far cheaper than filtering white noise.
    """
    cells = max(2, int(np.ceil(size / max(correlation_px, 1.0))) + 1)
    coarse = rng.standard_normal((cells, cells)).astype(np.float32)
    field = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    field -= field.mean()
    std = float(field.std())
    return field / std if std > 0 else field


def white_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Per-pixel standard normal noise as float32."""
    return rng.standard_normal((size, size), dtype=np.float32)


def blob_distance(
    cols: np.ndarray,
    rows: np.ndarray,
    centre: tuple[float, float],
    radius_px: float,
    rng: np.random.Generator,
    wobble: float = 0.15,
) -> np.ndarray:
    """Normalised distance to an irregular blob: < 1 inside, 1 on its outline.

    The outline radius varies with angle (a few low harmonics) so blobs do not look stamped.
    """
    dx = cols - centre[0]
    dy = rows - centre[1]
    angle = np.arctan2(dy, dx)
    scale = np.ones_like(angle)
    for harmonic in (2, 3, 5):
        amp = wobble * rng.uniform(0.3, 1.0) / (harmonic - 1)
        scale += amp * np.cos(harmonic * angle + rng.uniform(0.0, 2.0 * np.pi))
    return np.hypot(dx, dy) / (radius_px * np.maximum(scale, 0.4))


def segment_distance(
    cols: np.ndarray, rows: np.ndarray, start: np.ndarray, end: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (px) from each pixel to a segment, and the position along it in [0, 1]."""
    direction = end - start
    length_sq = float(direction @ direction)
    along = ((cols - start[0]) * direction[0] + (rows - start[1]) * direction[1]) / length_sq
    along = np.clip(along, 0.0, 1.0)
    px = start[0] + along * direction[0]
    py = start[1] + along * direction[1]
    return np.hypot(cols - px, rows - py), along
