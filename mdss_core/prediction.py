"""What one prediction returns, at the sample's ORIGINAL resolution so views overlay it directly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from mdss_core.errors import DataError
from mdss_core.io.sample import SampleRef


@dataclass(frozen=True)
class Region:
    """One connected defect region of the thresholded fused map (8-connectivity)."""

    label: int  # id in RegionSet.labels (1-based)
    area_px: int
    area_mm2: float | None  # from the point cloud's metric pixel footprint, when it has points
    bbox: tuple[int, int, int, int]  # row0, col0, row1, col1 (exclusive ends)
    centroid: tuple[float, float]  # row, col
    max_rgb: float  # aligned RGB score (same scale as 3D and fused)
    mean_rgb: float
    max_3d: float
    mean_3d: float
    max_fused: float
    mean_fused: float
    driver: str  # "colour", "geometry" or "both": which modality makes the region


@dataclass(frozen=True)
class RegionSet:
    """The regions of one fused map at one pixel threshold; iterates over its regions."""

    threshold: float
    labels: np.ndarray  # int32 H×W: the region's label, 0 = in no region
    regions: tuple[Region, ...] = ()

    def __len__(self) -> int:
        return len(self.regions)

    def __iter__(self) -> Iterator[Region]:
        return iter(self.regions)

    def at(self, row: int, col: int) -> Region | None:
        """The region under a pixel, or ``None`` outside every region (or the image)."""
        h, w = self.labels.shape
        if not (0 <= row < h and 0 <= col < w):
            return None
        label = int(self.labels[row, col])
        return next((r for r in self.regions if r.label == label), None) if label else None

    def mask(self, region: Region | None = None) -> np.ndarray:
        """Pixels of ``region``, or of every region (the fused map at or above the threshold)."""
        return self.labels == region.label if region is not None else self.labels > 0


@dataclass(frozen=True)
class BranchMaps:
    """What the networks give for one sample: S×S float32 maps at the model's size."""

    rgb: np.ndarray  # RGB student–teacher map, zero outside the dilated foreground
    sdf: np.ndarray  # the 3D branch's map: per-point |sdf| scattered to pixels, then blurred
    point_grid: np.ndarray  # the same scores unblurred: |sdf| at each object point's pixel
    normals: np.ndarray | None = None  # the student's normal-image map, when it sees one


@dataclass(frozen=True)
class Prediction:
    """One sample's result. Maps are float32 H×W at the sample's resolution (read-only);
    scores are image-level; thresholds and regions are the model's defaults."""

    sample_key: str
    rgb_map: np.ndarray  # raw student–teacher map
    rgb_map_aligned: np.ndarray  # the RGB map on the fused scale (see ``fusion``)
    map_3d: np.ndarray  # the 3D map on the fused scale: blurred |sdf| (paper), or the mean
    # z-score of |sdf| and the normal-image map (zscore)
    point_map: np.ndarray  # each object point's 3D score at its pixel on the fused scale (its
    # |sdf|; with the zscore rule and a normal image, the mean of both z-scores), 0: no point
    object_mask: np.ndarray  # bool: points kept after background-plane removal
    fused_map: np.ndarray  # max(aligned RGB, 3D) (paper) or z(RGB) + 3D (zscore)
    score_rgb: float  # the RGB score the fusion uses: raw maximum (paper) or its z-score
    score_3d: float  # the 3D score the fusion uses
    score_fused: float  # product of the maxima (paper 3.3) or score_rgb + score_3d (zscore)
    image_threshold: float
    regions: RegionSet  # at the model's pixel threshold
    timings_ms: dict[str, float] = field(default_factory=dict)
    normal_map: np.ndarray | None = None  # raw normal-image map, when the model has one

    def __post_init__(self) -> None:
        for name in ("rgb_map", "rgb_map_aligned", "map_3d", "point_map", "object_mask"):
            getattr(self, name).flags.writeable = False
        self.fused_map.flags.writeable = False
        if self.normal_map is not None:
            self.normal_map.flags.writeable = False
        self.regions.labels.flags.writeable = False

    @property
    def pixel_threshold(self) -> float:
        return self.regions.threshold

    @property
    def score_relative(self) -> float:
        """The fused score over the image threshold: 1.0 = at the threshold, on every model's
        scale alike (NaN when the threshold is not positive)."""
        return relative_score(self.score_fused, self.image_threshold)

    @property
    def is_anomalous(self) -> bool:
        return self.score_fused >= self.image_threshold

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.fused_map.shape[0]), int(self.fused_map.shape[1]))

    def scores(self) -> dict[str, float]:
        return {"rgb": self.score_rgb, "3d": self.score_3d, "fused": self.score_fused}

    def maps(self) -> dict[str, np.ndarray]:
        """Each modality's map, under the names of :meth:`scores`."""
        return {"rgb": self.rgb_map, "3d": self.map_3d, "fused": self.fused_map}


def relative_score(score: float, threshold: float) -> float:
    """``score`` in units of ``threshold`` (NaN when the threshold is not positive)."""
    return score / threshold if threshold > 0 else float("nan")


@dataclass(frozen=True)
class Scored:
    """One sample of a scoring run: its prediction, or the one-line error that kept it out."""

    ref: SampleRef
    prediction: Prediction | None = None
    error: DataError | None = None
