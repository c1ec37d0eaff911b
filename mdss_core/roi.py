"""Region of interest: the part of the image a model judges.

An ROI is a list of include-polygons (none = the whole image) minus a list of exclude-polygons,
in normalised image coordinates (x = column / width, y = row / height, both 0..1), so one ROI
serves every resolution: the model size the scores are measured at and the sample's own size
the maps are shown at. Outside it, every map is zero before scores, thresholds and regions are
computed (:func:`mdss_core.assemble.assemble`), so ignored fixtures or part edges can neither
flag a sample nor make a region.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mdss_core.errors import ConfigError
from mdss_core.prediction import BranchMaps

Point = tuple[float, float]
Polygon = tuple[Point, ...]

MIN_POINTS = 3
MIN_AREA = 1e-4  # of the image: a polygon smaller than 0.01 % is a mis-click, not an ROI


@dataclass(frozen=True)
class Roi:
    """Include-polygons (empty = whole image) minus exclude-polygons, normalised 0..1."""

    include: tuple[Polygon, ...] = ()
    exclude: tuple[Polygon, ...] = ()

    def __post_init__(self) -> None:
        if not self.include and not self.exclude:
            raise ConfigError("roi: no polygon (clear the ROI instead)")

    def mask(self, height: int, width: int) -> np.ndarray:
        """Bool ``height × width``: the pixels whose centre lies inside the ROI."""
        if self.include:
            inside = _fill(self.include, height, width)
        else:
            inside = np.ones((height, width), bool)
        if self.exclude:
            inside &= ~_fill(self.exclude, height, width)
        return inside

    def fraction(self, height: int = 256, width: int = 256) -> float:
        """Share of the image inside the ROI (at ``height × width``)."""
        return float(self.mask(height, width).mean())

    def to_dict(self) -> dict[str, Any]:
        return {
            "include": [[list(p) for p in poly] for poly in self.include],
            "exclude": [[list(p) for p in poly] for poly in self.exclude],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Roi:
        if not isinstance(data, dict):
            raise ConfigError("roi: expected an object with 'include' and 'exclude' polygons")
        return make_roi(data.get("include") or (), data.get("exclude") or ())

    def describe(self) -> str:
        """One line for ``model info`` and the GUI."""
        parts = [f"{len(self.include)} include polygon(s)" if self.include else "whole image"]
        if self.exclude:
            parts.append(f"minus {len(self.exclude)} exclude polygon(s)")
        return f"{' '.join(parts)}, {100 * self.fraction():.1f}% of the image"


def make_roi(include: Iterable[Any] = (), exclude: Iterable[Any] = ()) -> Roi:
    """An :class:`Roi` from point lists; a bad polygon raises one ``ConfigError`` line."""
    inc = tuple(check_polygon(p, f"include polygon {i + 1}") for i, p in enumerate(include))
    exc = tuple(check_polygon(p, f"exclude polygon {i + 1}") for i, p in enumerate(exclude))
    return Roi(inc, exc)


def check_polygon(points: Any, what: str = "polygon") -> Polygon:
    """``[(x, y), …]`` normalised 0..1, at least 3 points, not degenerate."""
    try:
        poly = tuple((float(x), float(y)) for x, y in points)
    except (TypeError, ValueError):
        raise ConfigError(f"roi: {what}: expected a list of (x, y) points") from None
    if len(poly) < MIN_POINTS:
        raise ConfigError(f"roi: {what}: needs at least {MIN_POINTS} points, got {len(poly)}")
    for x, y in poly:
        if not (math.isfinite(x) and math.isfinite(y) and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ConfigError(
                f"roi: {what}: point ({x:g}, {y:g}) lies outside the image "
                "(coordinates are fractions of the width and height, 0..1)"
            )
    if polygon_area(poly) < MIN_AREA:
        raise ConfigError(f"roi: {what}: encloses no area (points on a line or too close)")
    return poly


def parse_polygon(text: str, what: str = "polygon") -> Polygon:
    """``"x0,y0,x1,y1,…"`` (the CLI's form) → a checked polygon."""
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"roi: {what} '{text}': expected numbers x0,y0,x1,y1,…") from None
    if len(values) % 2:
        raise ConfigError(f"roi: {what} '{text}': odd number of coordinates")
    return check_polygon(list(zip(values[::2], values[1::2], strict=True)), what)


def polygon_area(poly: Sequence[Point]) -> float:
    """Shoelace area (absolute; a self-crossing polygon counts its lobes against each other)."""
    x = np.array([p[0] for p in poly])
    y = np.array([p[1] for p in poly])
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def _fill(polygons: Sequence[Polygon], height: int, width: int) -> np.ndarray:
    """Pixels whose centre lies inside any of ``polygons`` (even-odd rule per polygon).

    A scan line per row through the pixel centres: exact at every size, so the same ROI cuts
    the model-size and the full-size maps along the same outline.
    """
    inside = np.zeros((height, width), bool)
    centres_x = (np.arange(width) + 0.5) / width
    centres_y = (np.arange(height) + 0.5) / height
    for poly in polygons:
        pts = np.asarray(poly, np.float64)
        x0, y0 = pts[:, 0], pts[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        for row, y in enumerate(centres_y):
            spans = (y0 <= y) != (y1 <= y)  # edges this row's centre line crosses
            if not spans.any():
                continue
            t = (y - y0[spans]) / (y1[spans] - y0[spans])
            crossings = np.sort(x0[spans] + t * (x1[spans] - x0[spans]))
            inside[row] |= np.searchsorted(crossings, centres_x) % 2 == 1
    return inside


def mask_branch_maps(maps: BranchMaps, inside: np.ndarray) -> BranchMaps:
    """The networks' model-size maps with every pixel outside ``inside`` set to zero."""

    def cut(values: np.ndarray) -> np.ndarray:
        return np.where(inside, values, 0.0).astype(values.dtype, copy=False)

    normals = None if maps.normals is None else cut(maps.normals)
    return replace(
        maps, rgb=cut(maps.rgb), sdf=cut(maps.sdf), point_grid=cut(maps.point_grid), normals=normals
    )
