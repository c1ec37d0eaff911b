"""Score-map alignment and fusion (paper 3.3) and the default decision thresholds.

Alignment statistics are computed over the validation set, on the object's foreground pixels
(dilated point-cloud mask at model size) of both maps: background pixels carry no information
for either branch (the RGB loss is masked there, the 3D map is zero), and including them would
make the statistics depend on how much table the camera sees. RGB scores are then mapped so
that μ ± 3σ of RGB lands on μ ± 3σ of 3D (Shape-guided's L/U form of the same statement).

Two rules (``MDSSConfig.fusion``):

- ``paper`` (paper 3.3): image score = product of the RGB and 3D maxima; pixel map = maximum
  of the aligned RGB map and the 3D map.
- ``zscore``: every map is put in standard deviations of normal parts, pixel-wise by the
  validation foreground's mean/std and image-wise by the mean/std of the validation maxima.
  The geometry score is the mean of the 3D maps' z-scores (signed distance, and the student's
  normal-image map when it has one); fused = z(RGB) + geometry, for the image score and the
  pixel map alike. On real cable glands the product let a weak 3D map pull the fused score
  below RGB alone; the sum of z-scores was the best of eight rules on three checkpoints
  (``docs/experiments.md``).
- ``zmax`` (CRD, DM-GRD + SDF): each map in standard deviations of the validation
  foreground's pixels, summed; the image score is the fused map's maximum, or the mean of its
  ``top_k`` highest pixels (DM-GRD: 100).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from mdss_core.config_base import ConfigBase

FUSION_RULES = ("paper", "zscore", "zmax")


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

    def z(self, values: np.ndarray | float) -> np.ndarray | float:
        """Standard deviations above the mean (a zero spread counts as 1)."""
        return (values - self.mean) / (self.std if self.std > 0 else 1.0)

    @classmethod
    def of(cls, values: np.ndarray) -> MapStats:
        return cls(float(np.mean(values)), float(np.std(values)))


@dataclass(frozen=True)
class PeakStats(ConfigBase):
    """Mean/std of the validation samples' map maxima, per map (the ``zscore`` image scale)."""

    rgb: MapStats
    sdf: MapStats
    normals: MapStats | None = None


@dataclass(frozen=True)
class FusedMaps:
    """One sample's maps on the fusion's scale, and its image scores (see the module doc)."""

    rgb: np.ndarray  # the RGB map on the fused scale
    geometry: np.ndarray  # the 3D map(s) on the fused scale
    fused: np.ndarray
    score_rgb: float  # the RGB map's maximum: raw (paper) or its z-score (zscore)
    score_geometry: float
    score_fused: float


@dataclass(frozen=True)
class Calibration(ConfigBase):
    """Everything fusion needs, stored in the model file's JSON metadata."""

    rgb: MapStats
    sdf: MapStats
    image_threshold: float
    pixel_threshold: float
    n_samples: int
    rule: str = "paper"
    normals: MapStats | None = None  # pixel statistics of the normal-image map, when used
    peaks: PeakStats | None = None  # image-maximum statistics (``zscore`` rule)
    top_k: int = 0  # ``zmax``: image score = mean of the top-k fused pixels; 0 = the maximum

    def __post_init__(self) -> None:
        if self.rule not in FUSION_RULES:
            raise ValueError(f"fusion rule must be one of {FUSION_RULES}, not {self.rule!r}")
        if self.rule == "zscore" and self.peaks is None:
            raise ValueError("the zscore rule needs the validation maxima (peaks)")

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
        """RGB scores on the 3D scale, clipped at 0 like the 3D map (``paper`` rule)."""
        return np.maximum(self.weight * rgb_map + self.bias, 0.0).astype(np.float32)

    def point_scale(
        self, point_map: np.ndarray, normal_map: np.ndarray | None = None
    ) -> np.ndarray:
        """Per-point 3D scores on the scale the views colour by: |sdf| as it is (``paper``),
        or in standard deviations of normal parts, floored at 0. When the fusion's 3D map
        also holds the normal-image map, each point gets that same mean at its pixel: the
        cloud shows the 3D score the decision uses, not half of it."""
        if self.rule == "paper":
            return point_map
        z = self.sdf.z(point_map)
        if normal_map is not None and self._uses_normals():
            assert self.normals is not None  # for the type checker: _uses_normals said so
            z = (z + self.normals.z(normal_map)) / 2.0
        return np.maximum(z, 0.0).astype(np.float32)

    def geometry_maps(self) -> list[str]:
        """The maps the 3D score is made of: the 3D branch's, and the normal image's when
        calibrated for it (the views name them)."""
        return ["sdf", "normals"] if self._uses_normals() else ["sdf"]

    def _uses_normals(self) -> bool:
        """Whether the 3D map is the mean of z(|sdf|) and z(normal-image map)."""
        return (
            self.rule == "zscore"
            and self.normals is not None
            and self.peaks is not None
            and self.peaks.normals is not None
        )

    def fuse(
        self, rgb_map: np.ndarray, sdf_map: np.ndarray, normal_map: np.ndarray | None = None
    ) -> FusedMaps:
        """Maps of one sample (any common resolution) → maps on the fused scale and scores.

        Image scores use the maxima of the maps passed in, so pass the model-size maps when
        scores must match calibration (``assemble`` does both sizes).
        """
        if self.rule == "paper":
            aligned = self.align_rgb(rgb_map)
            return FusedMaps(
                aligned,
                sdf_map.astype(np.float32, copy=False),
                fuse_maps(aligned, sdf_map),
                float(np.max(rgb_map)),
                float(np.max(sdf_map)),
                image_score(rgb_map, sdf_map),
            )
        if self.rule == "zmax":
            z_rgb = np.asarray(self.rgb.z(rgb_map), np.float32)
            z_geometry = np.asarray(self.sdf.z(sdf_map), np.float32)
            fused = z_rgb + z_geometry
            return FusedMaps(
                z_rgb,
                z_geometry,
                fused,
                top_mean(z_rgb, self.top_k),
                top_mean(z_geometry, self.top_k),
                top_mean(fused, self.top_k),
            )
        peaks = self.peaks
        assert peaks is not None  # checked in __post_init__
        z_rgb = self.rgb.z(rgb_map)
        geometry_maps = [self.sdf.z(sdf_map)]
        geometry_peaks = [peaks.sdf.z(float(np.max(sdf_map)))]
        if normal_map is not None and self._uses_normals():
            assert self.normals is not None and peaks.normals is not None
            geometry_maps.append(self.normals.z(normal_map))
            geometry_peaks.append(peaks.normals.z(float(np.max(normal_map))))
        geometry = np.mean(geometry_maps, axis=0).astype(np.float32)
        score_geometry = float(np.mean(geometry_peaks))
        score_rgb = float(peaks.rgb.z(float(np.max(rgb_map))))
        return FusedMaps(
            z_rgb.astype(np.float32),
            geometry,
            (z_rgb + geometry).astype(np.float32),
            score_rgb,
            score_geometry,
            score_rgb + score_geometry,
        )


def top_mean(values: np.ndarray, k: int) -> float:
    """The mean of the ``k`` highest values (the maximum when ``k`` ≤ 1)."""
    if k <= 1 or values.size <= k:
        return float(values.max())
    return float(np.partition(values.ravel(), values.size - k)[-k:].mean())


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
    normal_maps: Sequence[np.ndarray] | None = None,
    rule: str = "paper",
    quantile: float = 1.0,
    top_k: int = 0,
) -> Calibration:
    """Statistics and thresholds from the maps of normal validation samples (model size).

    Thresholds use the upper tail of normal scores, never the lowest: the image threshold is the
    ``quantile`` of the normal validation samples' fused image scores, the pixel threshold the
    same quantile of their highest fused pixel inside the object. 1.0 = the highest: nothing
    normal is flagged, but one unusual normal scan then sets the threshold alone (on real cable
    glands one validation scan scored twice the next, and the maximum flagged 13 of 44 defective
    test scans); ``MDSSConfig.threshold_quantile`` (0.95) lets about one normal part in twenty
    through the calibration set instead.
    """
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"threshold quantile must lie in (0, 1], not {quantile}")
    if not rgb_maps or len(rgb_maps) != len(sdf_maps) or len(rgb_maps) != len(masks):
        raise ValueError("calibration needs the same non-zero number of RGB maps, 3D maps, masks")
    if normal_maps is not None and len(normal_maps) != len(rgb_maps):
        raise ValueError("calibration needs one normal-image map per RGB map")

    def foreground(maps: Sequence[np.ndarray]) -> np.ndarray:
        return np.concatenate([m[k] for m, k in zip(maps, masks, strict=True)])

    rgb_values = foreground(rgb_maps)
    if rgb_values.size == 0:
        raise ValueError("calibration masks select no pixel")

    def peak_stats(maps: Sequence[np.ndarray]) -> MapStats:
        return MapStats.of(np.array([float(np.max(m)) for m in maps]))

    use_normals = normal_maps is not None and rule == "zscore"
    partial = Calibration(
        rgb=MapStats.of(rgb_values),
        sdf=MapStats.of(foreground(sdf_maps)),
        image_threshold=0.0,
        pixel_threshold=0.0,
        n_samples=len(rgb_maps),
        rule=rule,
        top_k=top_k,
        normals=MapStats.of(foreground(normal_maps)) if use_normals else None,
        peaks=PeakStats(
            peak_stats(rgb_maps),
            peak_stats(sdf_maps),
            peak_stats(normal_maps) if use_normals else None,
        )
        if rule == "zscore"
        else None,
    )
    normals = normal_maps if use_normals else [None] * len(rgb_maps)
    fused = [partial.fuse(r, s, n) for r, s, n in zip(rgb_maps, sdf_maps, normals, strict=True)]
    return replace(
        partial,
        image_threshold=float(np.quantile([f.score_fused for f in fused], quantile)),
        pixel_threshold=float(
            np.quantile(
                [float(f.fused[k].max(initial=0.0)) for f, k in zip(fused, masks, strict=True)],
                quantile,
            )
        ),
    )
