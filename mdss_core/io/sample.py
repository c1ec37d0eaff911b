"""Typed samples: a light reference (paths + labels) and the loaded arrays."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdss_core.errors import DataError

log = logging.getLogger(__name__)

GOOD = "good"


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's files are and what is known about it, without loading pixels.

    ``label`` is 0 for normal, 1 for anomalous and -1 when unknown (a plain folder without gt).
    """

    sample_id: str
    rgb_path: Path
    xyz_path: Path
    gt_path: Path | None = None
    split: str = ""
    defect: str = ""
    category: str = ""

    @property
    def label(self) -> int:
        if self.defect == GOOD:
            return 0
        if self.defect:
            return 1
        return -1

    @property
    def key(self) -> str:
        """Stable display/output key, e.g. ``test/hole/003``."""
        parts = [p for p in (self.split, self.defect, self.sample_id) if p]
        return "/".join(parts)

    def load(self) -> Sample:
        from mdss_core.io.readers import read_gt, read_rgb, read_xyz

        rgb = read_rgb(self.rgb_path)
        xyz = read_xyz(self.xyz_path)
        if rgb.shape[:2] != xyz.shape[:2]:
            raise DataError(
                self.xyz_path,
                f"size {xyz.shape[1]}x{xyz.shape[0]} does not match its RGB image "
                f"{self.rgb_path.name} ({rgb.shape[1]}x{rgb.shape[0]})",
            )
        gt = None
        if self.gt_path is not None:
            gt = read_gt(self.gt_path)
            if gt.shape != rgb.shape[:2]:
                raise DataError(
                    self.gt_path,
                    f"mask size {gt.shape[1]}x{gt.shape[0]} does not match the sample "
                    f"({rgb.shape[1]}x{rgb.shape[0]})",
                )
        elif self.defect == GOOD:
            gt = np.zeros(rgb.shape[:2], dtype=bool)
        return Sample(ref=self, rgb=rgb, xyz=xyz, gt=gt)


@dataclass
class Sample:
    """Loaded arrays: ``rgb`` uint8 H×W×3, ``xyz`` float32 H×W×3 (missing = 0), ``gt`` bool H×W."""

    ref: SampleRef
    rgb: np.ndarray
    xyz: np.ndarray
    gt: np.ndarray | None = None

    @property
    def sample_id(self) -> str:
        return self.ref.sample_id

    @property
    def label(self) -> int:
        if self.gt is not None and self.ref.label == -1:
            return int(self.gt.any())
        return self.ref.label

    @property
    def defect(self) -> str:
        return self.ref.defect

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.rgb.shape[0]), int(self.rgb.shape[1]))

    @property
    def valid_mask(self) -> np.ndarray:
        """Pixels that carry a 3D point."""
        return np.any(self.xyz != 0, axis=2)

    @classmethod
    def from_arrays(
        cls,
        rgb: np.ndarray,
        xyz: np.ndarray,
        gt: np.ndarray | None = None,
        sample_id: str = "sample",
        defect: str = "",
    ) -> Sample:
        """Wrap in-memory arrays (tests, synthetic data, the GUI demo) with the same checks."""
        from mdss_core.io.readers import check_rgb, check_xyz

        ref = SampleRef(
            sample_id, Path(f"<{sample_id}.png>"), Path(f"<{sample_id}.tiff>"), defect=defect
        )

        rgb = check_rgb(np.asarray(rgb), ref.rgb_path)
        xyz = check_xyz(np.asarray(xyz), ref.xyz_path)
        if rgb.shape[:2] != xyz.shape[:2]:
            raise DataError(ref.xyz_path, "rgb and xyz sizes differ")
        gt_bool = None if gt is None else np.asarray(gt) > 0
        return cls(ref=ref, rgb=rgb, xyz=xyz, gt=gt_bool)
