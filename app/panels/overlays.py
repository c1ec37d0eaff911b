"""Qt-free helpers for 2D overlays: colour look-up tables and mask outlines as polylines.

The colour map, its low-score fade and the scale's ceiling are the engine's
(:mod:`mdss_core.overlay_render`, through the façade), so exported overlays look like the views.
"""

from __future__ import annotations

import cv2
import numpy as np
import pyqtgraph as pg

from mdss_core.api import FADE, SCORE_COLORMAP, display_ceiling, fade_alpha, score_colours

__all__ = ["display_ceiling", "mask_outline", "overlay_lut", "score_colormap"]


def score_colormap() -> pg.ColorMap:
    """The engine's score colour map as a pyqtgraph map."""
    colours = score_colours()
    return pg.ColorMap(np.linspace(0.0, 1.0, len(colours)), colours, name=SCORE_COLORMAP)


def overlay_lut(size: int = 256, fade: float = FADE) -> np.ndarray:
    """RGBA table whose lowest ``fade`` fraction fades to transparent.

    Normal pixels (score near 0) then leave the image visible and only anomalies are tinted.
    """
    colours = score_colormap().getLookupTable(nPts=size, alpha=False, mode="byte")
    alpha = fade_alpha(size, fade) * 255
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
