"""Planted defects: each changes the height, the albedo, or both, inside a known support.

Profiles have compact support (they reach exactly zero at the outline), so the ground truth is
the support itself: the pixels where the defect changes the data, no more and no less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdss_core.synth.categories import MM, ObjectLayer
from mdss_core.synth.fields import blob_distance, segment_distance, smoothstep
from mdss_core.synth.scene import Grid

DEFECT_KINDS: dict[str, str] = {
    "stain": "colour",
    "discoloration": "colour",
    "dent": "geometry",
    "bump": "geometry",
    "cut": "geometry",
    "hole": "geometry",
    "contamination": "both",
}

# Defect area as a fraction of the part's visible area (min, max): visible, not huge.
_AREA_FRACTION = {
    "stain": (0.010, 0.030),
    "discoloration": (0.035, 0.070),
    "dent": (0.012, 0.035),
    "bump": (0.012, 0.035),
    "hole": (0.005, 0.015),
    "contamination": (0.008, 0.025),
}
_MIN_RADIUS_PX = 2.5  # keeps every defect resolvable at small image sizes

_STAIN_COLOURS = np.array(
    [[0.10, 0.08, 0.06], [0.30, 0.16, 0.06], [0.08, 0.10, 0.14], [0.35, 0.30, 0.10]],
    dtype=np.float32,
)
_CONTAMINATION_COLOURS = np.array(
    [[0.88, 0.87, 0.82], [0.22, 0.23, 0.22], [0.40, 0.44, 0.28], [0.58, 0.34, 0.18]],
    dtype=np.float32,
)


@dataclass(frozen=True)
class DefectEffect:
    """What a planted defect does to the part."""

    name: str
    height_delta: np.ndarray  # (H, W) metres added to the part's height (0 outside the support)
    albedo: np.ndarray  # (H, W, 3) the albedo with the defect painted in
    support: np.ndarray  # (H, W) bool where the defect changes height or albedo


def plant_defect(
    name: str, part: ObjectLayer, albedo: np.ndarray, grid: Grid, rng: np.random.Generator
) -> DefectEffect:
    """Plant defect ``name`` at a random place of ``part.defect_zone``."""
    if name not in DEFECT_KINDS:
        raise ValueError(f"unknown defect '{name}'")
    zone = np.flatnonzero(part.defect_zone)
    if zone.size == 0:  # only possible for absurdly small images: fall back to the footprint
        zone = np.flatnonzero(part.mask)
    row, col = divmod(int(zone[rng.integers(zone.size)]), grid.size)
    centre = (float(col), float(row))
    part_area_px = float(part.mask.sum())
    delta = np.zeros_like(part.height)
    new_albedo = albedo.copy()

    if name == "cut":
        weight, delta = _cut(part, grid, centre, rng)
    else:
        low, high = _AREA_FRACTION[name]
        radius = max(_MIN_RADIUS_PX, np.sqrt(rng.uniform(low, high) * part_area_px / np.pi))
        wobble = 0.08 if name in ("dent", "bump", "hole") else 0.22
        d = blob_distance(grid.cols, grid.rows, centre, radius, rng, wobble)
        radius_m = radius * grid.spacing
        if name == "stain":
            weight = smoothstep(1.0, 0.6, d)  # soft edge over the outer 40 %
            colour = _STAIN_COLOURS[rng.integers(len(_STAIN_COLOURS))]
            strength = rng.uniform(0.45, 0.8)
            alpha = (strength * weight)[..., None]
            new_albedo = albedo * (1 - alpha) + colour * alpha
        elif name == "discoloration":
            weight = smoothstep(1.0, 0.5, d)
            # A subtle brightness shift (darker or paler by 10–20 %) with a slight hue tilt.
            brightness = rng.choice([-1.0, 1.0]) * rng.uniform(0.10, 0.20)
            gains = 1.0 + brightness + rng.uniform(-0.06, 0.06, 3)
            new_albedo = albedo * (1.0 + weight[..., None] * (gains - 1.0)).astype(np.float32)
        elif name in ("dent", "bump"):
            weight = np.clip(1.0 - d**2, 0.0, None) ** 2  # smooth, zero slope at the outline
            amp = min(rng.uniform(0.5, 2.0) * MM, 0.6 * radius_m)
            delta = (-amp if name == "dent" else amp) * weight
        elif name == "hole":
            # Missing material: a steep-walled pit down to the plane or ≥ 2–5 mm deep.
            weight = smoothstep(1.0, 0.8, d)
            depth = np.minimum(part.height, rng.uniform(2.0, 5.0) * MM)
            delta = -depth * weight
        else:  # contamination: raised foreign matter with its own colour
            weight = smoothstep(1.0, 0.75, d)
            amp = min(rng.uniform(0.4, 1.5) * MM, 0.5 * radius_m)
            lumpy = 1.0 + 0.3 * np.cos(d * 9.0 + rng.uniform(0, 6.3))
            delta = amp * weight * lumpy
            colour = _CONTAMINATION_COLOURS[rng.integers(len(_CONTAMINATION_COLOURS))]
            alpha = np.clip(1.6 * weight, 0.0, 1.0)[..., None]
            new_albedo = albedo * (1 - alpha) + colour * alpha

    support = (weight > 0) & part.mask
    delta = np.where(support, delta, 0.0)
    new_albedo = np.where(support[..., None], new_albedo, albedo).astype(np.float32)
    if DEFECT_KINDS[name] == "geometry":
        new_albedo = albedo  # geometry defects never repaint the surface
    return DefectEffect(name, delta, new_albedo, support)


def _cut(
    part: ObjectLayer, grid: Grid, centre: tuple[float, float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A narrow V-groove along a slightly random segment, tapering at both ends."""
    length_px = rng.uniform(6.0, 14.0) * MM / grid.spacing
    half_width_px = max(1.2, rng.uniform(0.3, 0.55) * MM / grid.spacing)
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    start = np.asarray(centre) - 0.5 * length_px * direction
    end = np.asarray(centre) + 0.5 * length_px * direction
    dist, along = segment_distance(grid.cols, grid.rows, start, end)
    across = np.clip(1.0 - dist / half_width_px, 0.0, None)
    taper = np.sin(np.pi * along) ** 0.5
    weight = across * taper
    depth = np.minimum(rng.uniform(0.5, 1.5) * MM, 0.8 * part.height)
    return weight, -depth * weight
