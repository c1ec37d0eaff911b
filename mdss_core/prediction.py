"""What one prediction returns, at the sample's ORIGINAL resolution so views overlay it directly."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mdss_core.errors import DataError
from mdss_core.io.sample import SampleRef


@dataclass(frozen=True)
class Region:
    """One connected defect region of the thresholded fused map (8-connectivity)."""

    label: int  # id in Prediction.region_labels (1-based)
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

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class BranchMaps:
    """What the networks give for one sample: S×S float32 maps at the model's size."""

    rgb: np.ndarray  # RGB student–teacher map, zero outside the dilated foreground
    sdf: np.ndarray  # the 3D branch's map: per-point |sdf| scattered to pixels, then blurred
    point_grid: np.ndarray  # the same scores unblurred: |sdf| at each object point's pixel


@dataclass
class Prediction:
    """Maps are float32 H×W at the sample's resolution; scores are image-level."""

    sample_key: str
    rgb_map: np.ndarray  # raw student-teacher map
    rgb_map_aligned: np.ndarray  # RGB map mapped onto the 3D scale (paper 3.3)
    sdf_map: np.ndarray  # blurred |sdf| map
    point_scores: np.ndarray  # |sdf| per valid object point, 0 where no object point
    object_mask: np.ndarray  # bool: points kept after background-plane removal
    fused_map: np.ndarray  # max(aligned RGB, 3D)
    score_rgb: float
    score_3d: float
    score_fused: float  # product of the two maxima (paper 3.3)
    image_threshold: float
    pixel_threshold: float
    region_labels: np.ndarray  # int32, 0 = no region
    regions: list[Region] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def is_anomalous(self) -> bool:
        return self.score_fused >= self.image_threshold

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.fused_map.shape[0]), int(self.fused_map.shape[1]))

    def scores(self) -> dict[str, float]:
        return {"rgb": self.score_rgb, "3d": self.score_3d, "fused": self.score_fused}


@dataclass(frozen=True)
class Scored:
    """One sample of a scoring run: its prediction, or the one-line error that kept it out."""

    ref: SampleRef
    prediction: Prediction | None = None
    error: DataError | None = None
