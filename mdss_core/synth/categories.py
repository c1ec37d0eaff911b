"""Product categories: the shape (height above the plane) and albedo of each kind of part.

Each builder works in the object frame (s, t) in metres, so the pose only changes coordinates.
Sizes and colours jitter a little per sample; the normal class stays one well-defined product.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mdss_core.synth.fields import smooth_noise, smoothstep, white_noise
from mdss_core.synth.scene import Grid, Pose

MM = 1.0e-3


@dataclass(frozen=True)
class ObjectLayer:
    """The defect-free part as seen from above."""

    height: np.ndarray  # (H, W) float64 metres above the plane, 0 off the part
    mask: np.ndarray  # (H, W) bool footprint
    albedo: np.ndarray  # (H, W, 3) float32 in [0, 1], meaningful where mask
    defect_zone: np.ndarray  # (H, W) bool where a defect centre may be placed
    specular: np.ndarray  # (H, W) float32 strength of the glossy highlight


def _jitter(rng: np.random.Generator, amount: float) -> float:
    return float(1.0 + rng.uniform(-amount, amount))


def _colour(
    rng: np.random.Generator, base: tuple[float, float, float], amount: float
) -> np.ndarray:
    """``base`` with a brightness jitter of ±amount and a three times smaller hue jitter."""
    gain = rng.uniform(1 - amount, 1 + amount) * rng.uniform(1 - amount / 3, 1 + amount / 3, 3)
    return (np.asarray(base) * gain).astype(np.float32)


def _ring(grid: Grid, s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> ObjectLayer:
    """A thick metal ring: annulus with a flat, rounded-edge cross-section, turned finish.

    Every part stands > 5 mm above the plane over most of its footprint, because background
    removal (BTF recipe) erases points within 5 mm of the plane.
    """
    k = _jitter(rng, 0.03)
    centre_r, half_w, top = 16.0 * MM * k, 7.0 * MM * k, 8.0 * MM * _jitter(rng, 0.05)
    rho = np.hypot(s, t)
    u = np.abs(rho - centre_r) / half_w
    mask = u < 1.0
    profile = np.where(mask, np.clip(1.0 - u**3, 0.0, 1.0) ** (1.0 / 3.0), 0.0)
    height = top * profile
    n = grid.size
    # Turning marks: brightness varies with radius only (concentric streaks rotate with the part).
    bins = np.arange(0.0, 0.03, 0.15 * MM)
    streak_values = rng.standard_normal(len(bins)).astype(np.float32)
    streaks = np.interp(rho, bins, streak_values).astype(np.float32)
    shade = 1.0 + 0.02 * streaks + 0.03 * smooth_noise(rng, n, 8 * MM / grid.spacing)
    shade += 0.02 * white_noise(rng, n)
    albedo = _colour(rng, (0.62, 0.63, 0.66), 0.03) * shade[..., None]
    zone = mask & (u < 0.65)
    specular = np.where(mask, 0.25, 0.0).astype(np.float32)
    return ObjectLayer(height, mask, albedo.astype(np.float32), zone, specular)


def _bolt(grid: Grid, s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> ObjectLayer:
    """A hex-head bolt lying on a flat of its head; the threaded shank slopes down to the plane."""
    k = _jitter(rng, 0.03)
    radius, head_r = 5.0 * MM * k, 8.5 * MM * k
    length, head_len = 52.0 * MM * k, 7.0 * MM * k
    pitch, thread_depth = 1.75 * MM, 0.55 * MM
    apothem = head_r * np.sqrt(3.0) / 2.0
    s0 = -length / 2.0
    head_end, tip = s0 + head_len, length / 2.0
    thread_start = head_end + rng.uniform(10.0, 14.0) * MM
    abs_t = np.abs(t)

    # Head: hexagonal prism resting on one face, seen from above.
    in_head = (s >= s0) & (s < head_end) & (abs_t < head_r)
    head_h = np.where(abs_t <= head_r / 2.0, 2.0 * apothem, apothem + (head_r - abs_t) * np.sqrt(3))
    # Shank: its axis falls from the head's centre height to touching the plane at the tip.
    frac = np.clip((s - head_end) / (tip - head_end), 0.0, 1.0)
    axis_h = apothem + (radius - apothem) * frac
    phase = s / pitch + np.arcsin(np.clip(t / radius, -1.0, 1.0)) / (2.0 * np.pi)
    tri = np.abs((phase % 1.0) - 0.5) * 2.0  # triangle wave: 1 at crest, 0 at root
    groove = np.clip(1.25 * (1.0 - tri) - 0.1, 0.0, 1.0)  # flattened crests and roots
    threaded = smoothstep(thread_start, thread_start + pitch, s)
    chamfer = 1.2 * MM * smoothstep(tip - 1.2 * MM, tip, s)
    r_eff = radius - thread_depth * groove * threaded - chamfer
    in_shank = (s >= head_end) & (s <= tip) & (abs_t < r_eff)
    shank_h = axis_h + np.sqrt(np.clip(r_eff**2 - t**2, 0.0, None))
    height = np.where(in_head, head_h, np.where(in_shank, shank_h, 0.0))
    mask = in_head | in_shank

    n = grid.size
    shade = 1.0 + 0.04 * smooth_noise(rng, n, 5 * MM / grid.spacing) + 0.02 * white_noise(rng, n)
    shade -= 0.12 * (groove * threaded * in_shank)  # oil and grime collect in the thread roots
    albedo = _colour(rng, (0.72, 0.70, 0.62), 0.04) * shade[..., None]
    zone = (in_shank & (abs_t < 0.6 * radius) & (s < tip - 3 * MM)) | (
        in_head & (abs_t < 0.45 * head_r)
    )
    specular = np.where(mask, 0.3, 0.0).astype(np.float32)
    return ObjectLayer(height, mask, albedo.astype(np.float32), zone, specular)


def _disc(grid: Grid, s: np.ndarray, t: np.ndarray, rng: np.random.Generator) -> ObjectLayer:
    """A baked cookie: lumpy domed disc, golden-brown with fine speckles and chocolate chips."""
    k = _jitter(rng, 0.04)
    radius, top, edge = 24.0 * MM * k, 9.0 * MM * _jitter(rng, 0.06), 3.0 * MM
    rho = np.hypot(s, t)
    angle = np.arctan2(t, s)
    outline = radius * (1.0 + 0.012 * np.cos(3 * angle + rng.uniform(0, 6.3)))
    outline *= 1.0 + 0.008 * np.cos(5 * angle + rng.uniform(0, 6.3))
    mask = rho < outline
    rel = np.clip(rho / outline, 0.0, 1.0)
    dome = top * (0.88 + 0.12 * (1.0 - rel**2))
    inner = outline - edge
    round_edge = np.sqrt(np.clip(1.0 - ((rho - inner) / edge).clip(0.0, None) ** 2, 0.0, 1.0))
    n = grid.size
    per_mm = MM / grid.spacing
    lumps = 0.2 * MM * smooth_noise(rng, n, 3.0 * per_mm) + 0.08 * MM * smooth_noise(
        rng, n, 1.0 * per_mm
    )
    height = np.where(mask, (dome + lumps) * round_edge, 0.0)

    base = _colour(rng, (0.80, 0.58, 0.33), 0.04)
    browning = 1.0 - 0.18 * smoothstep(0.6, 1.0, rel) + 0.05 * smooth_noise(rng, n, 6 * per_mm)
    grain = 1.0 + 0.04 * white_noise(rng, n)
    albedo = base * (browning * grain)[..., None]
    # Fine dark speckles (colour only): part of every normal cookie.
    specks = smooth_noise(rng, n, max(1.0, 0.6 * per_mm)) > 2.3
    albedo[specks] *= 0.55
    # Chocolate chips: small raised dark blobs.
    chip_colour = np.array([0.26, 0.16, 0.10], dtype=np.float32)
    for _ in range(int(rng.integers(7, 13))):
        r = rng.uniform(0.0, 0.8) * radius
        a = rng.uniform(0.0, 2.0 * np.pi)
        cs, ct = r * np.cos(a), r * np.sin(a)
        chip_d = np.hypot(s - cs, t - ct) / (rng.uniform(1.2, 2.0) * MM)
        chip = mask & (chip_d < 1.0)
        height = height + np.where(chip, rng.uniform(0.3, 0.6) * MM * (1 - chip_d**2), 0.0)
        albedo[chip] = chip_colour * rng.uniform(0.85, 1.15)
    zone = mask & (rho < inner - 1.0 * MM)
    specular = np.zeros((n, n), dtype=np.float32)
    return ObjectLayer(height, mask, albedo.astype(np.float32), zone, specular)


_BUILDERS: dict[str, Callable[[Grid, np.ndarray, np.ndarray, np.random.Generator], ObjectLayer]]
_BUILDERS = {"ring": _ring, "bolt": _bolt, "disc": _disc}

CATEGORIES: tuple[str, ...] = tuple(_BUILDERS)

# How far the part may move from the frame centre (its longest half-extent + margin fits).
_MAX_SHIFT_M = {"ring": 12.0 * MM, "bolt": 8.0 * MM, "disc": 10.0 * MM}


def build_object(category: str, grid: Grid, rng: np.random.Generator) -> ObjectLayer:
    """Draw a pose and build the defect-free part of ``category`` on ``grid``."""
    pose = Pose.draw(rng, _MAX_SHIFT_M[category])
    s, t = pose.local(grid)
    return _BUILDERS[category](grid, s, t, rng)


def background_albedo(grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """A matte dark-grey support plate with mild mottling and grain."""
    n = grid.size
    base = _colour(rng, (0.17, 0.18, 0.21), 0.06)
    mottle = 1.0 + 0.06 * smooth_noise(rng, n, 15.0 * MM / grid.spacing)
    grain = 1.0 + 0.08 * white_noise(rng, n)
    return (base * (mottle * grain)[..., None]).astype(np.float32)


__all__ = ["CATEGORIES", "ObjectLayer", "background_albedo", "build_object"]
