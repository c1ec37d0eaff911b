"""Qt-free helpers for 2D overlays: colour look-up tables and mask outlines as polylines."""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg

from mdss_app.style import SCORE_COLORMAP


def score_colormap(name: str = SCORE_COLORMAP) -> pg.ColorMap:
    return pg.colormap.get(name)


def overlay_lut(name: str = SCORE_COLORMAP, size: int = 256, fade: float = 0.2) -> np.ndarray:
    """RGBA table whose lowest ``fade`` fraction fades to transparent.

    Normal pixels (score near 0) then leave the image visible and only anomalies are tinted.
    """
    colours = score_colormap(name).getLookupTable(nPts=size, alpha=False, mode="byte")
    alpha = np.clip(np.arange(size) / max(1.0, fade * size), 0.0, 1.0) * 255
    return np.column_stack([colours[:, :3], alpha]).astype(np.uint8)


def mask_outline(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed outlines of a boolean mask as ``(x, y, connect)`` for a pyqtgraph curve.

    Coordinates are pixel centres (col + 0.5, row + 0.5) in row-major image space; ``connect``
    is False at the end of each outline so separate blobs are not joined.
    """
    if mask is None or not np.any(mask):
        empty = np.zeros(0, np.float64)
        return empty, empty, np.zeros(0, bool)
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    xs, ys, connect = [], [], []
    for contour in contours:
        pts = contour[:, 0, :].astype(np.float64)
        pts = np.vstack([pts, pts[:1]])  # close the loop
        xs.append(pts[:, 0] + 0.5)
        ys.append(pts[:, 1] + 0.5)
        link = np.ones(len(pts), bool)
        link[-1] = False
        connect.append(link)
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(connect)


def display_ceiling(pixel_threshold: float, maps: list[np.ndarray] | None = None) -> float:
    """Upper colour level shared by the anomaly maps: twice the pixel threshold.

    The threshold then sits mid-scale, so "above threshold" always looks the same colour. Falls
    back to the maps' robust maximum when the threshold is unusable.
    """
    if np.isfinite(pixel_threshold) and pixel_threshold > 0:
        return float(2.0 * pixel_threshold)
    peaks = [float(np.percentile(m, 99.9)) for m in maps or [] if m is not None and m.size]
    peak = max(peaks, default=0.0)
    return peak if peak > 0 else 1.0
