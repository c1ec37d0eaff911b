"""`ExportedNet`: a detector's exported graphs behind the same ``branch_maps`` as its torch net.

The graphs replace only the runners (the torch part of each branch); masking, blurring,
scattering point scores and everything after (``assemble``, fusion, regions) is the very code
the torch backend runs, so the two can differ only by the graphs' arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mdss_core.backends.runtime import GraphSession, run_batched
from mdss_core.config import MDSSConfig
from mdss_core.devices import CPU_PATCHES_PER_PASS
from mdss_core.errors import MDSSError
from mdss_core.prediction import BranchMaps
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.preprocess.ready import PatchSettings

# Images per graph call: one at a time, as torch runs on a CPU (mdss_core.devices).
IMAGES_PER_PASS = 1


class ExportedNet:
    """``sessions``: graph name → :class:`GraphSession` ("rgb" and "sdf", or "crd")."""

    device = "cpu"

    def __init__(self, config: MDSSConfig, sessions: dict[str, GraphSession]) -> None:
        self.config = config
        self.sessions = sessions

    @property
    def backend(self) -> str:
        return next(iter(self.sessions.values())).backend

    @property
    def patch_settings(self) -> PatchSettings | None:
        if self.config.method == "crd":
            return None
        sdf = self.config.sdf
        return PatchSettings(sdf.points_per_patch, sdf.coverage, self.config.seed)

    # MDSSModel moves and switches its net; graphs have neither device nor training mode.
    def to(self, device: str) -> ExportedNet:
        return self

    def eval(self) -> ExportedNet:
        return self

    def state_dict(self) -> dict:
        """No tensors to write: refused in one line (``MDSSModel.save`` asks for them)."""
        raise MDSSError(
            "a model running on exported graphs cannot be saved as a .mdss file: change the "
            ".mdss model and export it again"
        )

    def branch_maps(
        self,
        prepared: Sequence[PreparedSample],
        patches: Sequence[np.ndarray] | None = None,
    ) -> list[BranchMaps]:
        """Each sample's maps at model size, as the torch network gives them."""
        method = self.config.method
        if method == "crd":
            from mdss_core.crd.net import crd_branch_maps

            return crd_branch_maps(prepared, self.run_crd, self.config)
        if patches is None:
            patches = [self.patch_settings.cut(p.points) for p in prepared]
        if method == "dmgrd":
            from mdss_core.dmgrd.net import dmgrd_branch_maps

            return dmgrd_branch_maps(prepared, patches, self.run_image, self.run_sdf, self.config)
        from mdss_core.net import mdss_branch_maps

        return mdss_branch_maps(prepared, patches, self.run_rgb, self.run_sdf, self.config)

    # ------------------------------------------------------------------ runners
    def run_rgb(self, images: np.ndarray, normals: np.ndarray | None) -> np.ndarray:
        stacked = images if normals is None else np.concatenate([images, normals], axis=-1)
        return run_batched(self.sessions["rgb"], [stacked], IMAGES_PER_PASS)[0]

    def run_image(self, images: np.ndarray) -> np.ndarray:
        return run_batched(self.sessions["rgb"], [images], IMAGES_PER_PASS)[0]

    def run_crd(self, rgb: np.ndarray, geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m_rgb, m_geo = run_batched(self.sessions["crd"], [rgb, geo], IMAGES_PER_PASS)
        return m_rgb, m_geo

    def run_sdf(self, points: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """Best |sdf| per point over the patches that hold it (0 in none), as ``point_scores``."""
        points = np.asarray(points, dtype=np.float32)
        patches = np.asarray(patches, dtype=np.int64)
        abs_sdf = run_batched(self.sessions["sdf"], [points[patches]], CPU_PATCHES_PER_PASS)[0]
        best = np.full(len(points), np.inf, dtype=np.float32)
        np.minimum.at(best, patches.reshape(-1), abs_sdf.reshape(-1))
        best[np.isinf(best)] = 0.0
        return best

    def describe(self) -> dict[str, Any]:
        return {name: s.path.name for name, s in self.sessions.items()}
