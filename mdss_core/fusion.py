"""Score-map alignment and fusion (paper 3.3) and the default decision thresholds.

Alignment statistics are computed over the validation set, on the object's foreground pixels
(dilated point-cloud mask at model size) of both maps: background pixels carry no information
for either branch (the RGB loss is masked there, the 3D map is zero), and including them would
make the statistics depend on how much table the camera sees. RGB scores are then mapped so
that μ ± 3σ of RGB lands on μ ± 3σ of 3D (Shape-guided's L/U form of the same statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mdss_core.config_base import ConfigBase


@dataclass(frozen=True)
class MapStats(ConfigBase):
    mean: float
    std: float

    @property
    def lower(self) -> float:
        return self.mean - 3.0 * self.std

    @property
    def upper(self) -> float:
        return self.mean + 3.0 * self.std


@dataclass(frozen=True)
class Calibration(ConfigBase):
    """Everything fusion needs, stored in the model file's JSON metadata."""

    rgb: MapStats
    sdf: MapStats
    image_threshold: float
    pixel_threshold: float
    n_samples: int

    @property
    def weight(self) -> float:
        span_rgb = self.rgb.upper - self.rgb.lower
        if span_rgb <= 0:
            return 1.0  # a constant RGB map: nothing to stretch
        return (self.sdf.upper - self.sdf.lower) / span_rgb

    @property
    def bias(self) -> float:
        return self.sdf.lower - self.weight * self.rgb.lower

    def align_rgb(self, rgb_map: np.ndarray) -> np.ndarray:
        """RGB scores on the 3D scale, clipped at 0 like the 3D map."""
        return np.maximum(self.weight * rgb_map + self.bias, 0.0).astype(np.float32)


def image_score(rgb_map: np.ndarray, sdf_map: np.ndarray) -> float:
    """Paper 3.3: the product of the two maps' maxima."""
    return float(np.max(rgb_map)) * float(np.max(sdf_map))


def fuse_maps(rgb_aligned: np.ndarray, sdf_map: np.ndarray) -> np.ndarray:
    """Pixel map: the pixel-wise maximum of the aligned RGB map and the 3D map."""
    return np.maximum(rgb_aligned, sdf_map).astype(np.float32)


def calibrate(
    rgb_maps: Sequence[np.ndarray],
    sdf_maps: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
) -> Calibration:
    """Statistics and thresholds from the maps of normal validation samples (model size).

    Thresholds use the upper tail of normal scores, never the lowest: the image threshold is the
    highest fused image score of a normal validation sample and the pixel threshold the highest
    fused pixel score inside a normal object. With the few validation samples of a typical
    category this flags (almost) nothing on normal parts and leaves the user a slider to go lower.
    """
    if not rgb_maps or len(rgb_maps) != len(sdf_maps) or len(rgb_maps) != len(masks):
        raise ValueError("calibration needs the same non-zero number of RGB maps, 3D maps, masks")
    rgb_values = np.concatenate([m[k] for m, k in zip(rgb_maps, masks, strict=True)])
    sdf_values = np.concatenate([m[k] for m, k in zip(sdf_maps, masks, strict=True)])
    if rgb_values.size == 0:
        raise ValueError("calibration masks select no pixel")
    partial = Calibration(
        rgb=MapStats(float(rgb_values.mean()), float(rgb_values.std())),
        sdf=MapStats(float(sdf_values.mean()), float(sdf_values.std())),
        image_threshold=0.0,
        pixel_threshold=0.0,
        n_samples=len(rgb_maps),
    )
    image_scores = [image_score(r, s) for r, s in zip(rgb_maps, sdf_maps, strict=True)]
    pixel_peaks = [
        float(fuse_maps(partial.align_rgb(r), s)[k].max(initial=0.0))
        for r, s, k in zip(rgb_maps, sdf_maps, masks, strict=True)
    ]
    return Calibration(
        rgb=partial.rgb,
        sdf=partial.sdf,
        image_threshold=float(max(image_scores)),
        pixel_threshold=float(max(pixel_peaks)),
        n_samples=len(rgb_maps),
    )
