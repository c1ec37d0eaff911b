"""Render one synthetic sample: RGB image, organized point cloud and ground-truth mask."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mdss_core.synth.categories import CATEGORIES, background_albedo, build_object
from mdss_core.synth.defects import DEFECT_KINDS, plant_defect
from mdss_core.synth.scene import Grid, SensorDraw

GOOD = "good"


@dataclass(frozen=True)
class SynthSample:
    rgb: np.ndarray  # (H, W, 3) uint8, RGB order
    xyz: np.ndarray  # (H, W, 3) float32 metres, missing points exactly (0, 0, 0)
    gt: np.ndarray  # (H, W) bool, True on the defect
    albedo: np.ndarray  # (H, W, 3) float32 surface colour before shading (for tests/inspection)
    defect: str | None  # the planted defect, None for a defect-free sample


def sample_rngs(
    seed: int, category: str, split: str, folder: str, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent (scene, defect) generators derived from the sample's identity only.

    Changing how many samples are generated never changes another sample; the defect stream is
    separate so a sample and its defect-free twin share every scene draw.
    """
    words = [seed & 0xFFFFFFFF, seed >> 32 & 0xFFFFFFFF, index]
    words += [zlib.crc32(name.encode()) for name in (category, split, folder)]
    scene, defect = np.random.SeedSequence(words).spawn(2)
    return np.random.default_rng(scene), np.random.default_rng(defect)


def render_sample(
    category: str,
    folder: str,
    index: int,
    *,
    size: int = 256,
    seed: int = 0,
    split: str = "test",
    plant: bool = True,
) -> SynthSample:
    """Render sample ``index`` of ``<category>/<split>/<folder>``.

    ``folder`` is ``"good"`` or a defect name of :data:`DEFECT_KINDS`. With ``plant=False`` the
    same sample is rendered without its defect (identical noise, pose and texture).
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category '{category}' (choose from {', '.join(CATEGORIES)})")
    if folder != GOOD and folder not in DEFECT_KINDS:
        raise ValueError(f"unknown defect '{folder}' (choose from {', '.join(DEFECT_KINDS)})")
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be non-negative")
    grid = Grid.make(size)
    scene_rng, defect_rng = sample_rngs(seed, category, split, folder, index)
    part = build_object(category, grid, scene_rng)
    albedo = np.where(part.mask[..., None], part.albedo, background_albedo(grid, scene_rng))
    sensor = SensorDraw.draw(grid, part.mask, scene_rng)

    defect = folder if (plant and folder != GOOD) else None
    height = part.height
    gt = np.zeros((size, size), dtype=bool)
    missing = sensor.missing(height)
    if defect is not None:
        effect = plant_defect(defect, part, albedo, grid, defect_rng)
        albedo = effect.albedo
        height = np.clip(part.height + effect.height_delta, 0.0, None)
        gt = effect.support.copy()
        if DEFECT_KINDS[defect] != "colour":
            clean_missing = missing
            missing = sensor.missing(height)
            # A changed surface can also gain or lose points (new shadows, steeper walls).
            gt |= missing != clean_missing

    xyz = sensor.xyz(height, missing)
    rgb = sensor.rgb(albedo, height, part.height, part.specular)
    return SynthSample(rgb, xyz, gt, albedo.astype(np.float32), defect)
