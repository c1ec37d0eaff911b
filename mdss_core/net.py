"""MDSS as one torch module: the RGB branch and the SDF network, from prepared samples to maps.

Whatever runs the networks goes through :meth:`MDSSNet.branch_maps` (prediction, calibration
after training, evaluation, the benchmark), so a change to how a branch scores is made here
once. The networks' training loops live beside them (``rgb/train.py``, ``geometry/train.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
from torch import nn

from mdss_core.config import MDSSConfig
from mdss_core.devices import images_per_pass
from mdss_core.geometry.infer import blur_score_grid, point_scores, scores_to_map
from mdss_core.geometry.network import SDFNet
from mdss_core.prediction import BranchMaps
from mdss_core.preprocess.normals import normal_image
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.preprocess.ready import PatchSettings
from mdss_core.rgb.branch import RGBBranch


def normal_images(prepared: Sequence[PreparedSample]) -> np.ndarray:
    """uint8 N×S×S×3 surface-normal images of prepared samples (the student's second input)."""
    return np.stack([normal_image(p.xyz, p.object_mask) for p in prepared])


class MDSSNet(nn.Module):
    """The RGB branch (``rgb``) and the 3D branch's SDF network (``sdf``) with their settings.

    ``state_dict()`` keys start with ``rgb.`` and ``sdf.``: the tensors of a model file.
    """

    def __init__(self, rgb: RGBBranch, sdf: SDFNet, config: MDSSConfig) -> None:
        super().__init__()
        self.rgb = rgb
        self.sdf = sdf
        self.config = config

    @property
    def device(self) -> str:
        return str(self.rgb.device)

    @property
    def patch_settings(self) -> PatchSettings:
        """How the 3D branch cuts a cloud into patches."""
        return sdf_patch_settings(self.config)

    def branch_maps(
        self,
        prepared: Sequence[PreparedSample],
        patches: Sequence[np.ndarray] | None = None,
    ) -> list[BranchMaps]:
        """Each sample's maps at model size, each network run once over the whole batch.

        ``patches``: each sample's patch table (``patch_settings.cut``); cut here when omitted.
        """
        if patches is None:
            patches = [self.patch_settings.cut(p.points) for p in prepared]
        return mdss_branch_maps(prepared, patches, self.run_rgb, self.run_sdf, self.config)

    def run_rgb(self, images: np.ndarray, normals: np.ndarray | None) -> np.ndarray:
        """The RGB branch's torch part (an :data:`RGBRunner`): raw N×G×S×S maps."""
        per_pass = images_per_pass(self.device, len(images))
        return self.rgb.map_groups(images, normals, batch_size=per_pass, amp=self.config.rgb.amp)

    def run_sdf(self, points: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """The SDF network's torch part (an :data:`SDFRunner`): each point's best |sdf|."""
        return point_scores(self.sdf, points, patches, self.device)

    def rgb_maps(self, prepared: Sequence[PreparedSample]) -> list[np.ndarray]:
        """The colour map of each sample (see :meth:`student_maps`)."""
        return [maps[0] for maps in self.student_maps(prepared)]

    def student_maps(self, prepared: Sequence[PreparedSample]) -> list[np.ndarray]:
        """The RGB branch alone (see :func:`student_maps`)."""
        return student_maps(prepared, self.run_rgb, self.config, self.rgb.groups)

    def point_grids(
        self, prepared: Sequence[PreparedSample], patches: Sequence[np.ndarray]
    ) -> list[np.ndarray]:
        """The 3D branch alone (see :func:`sdf_point_grids`)."""
        return sdf_point_grids(self.sdf, self.device, prepared, patches)


# The torch part of each branch as a plain callable, so that the same numpy post-processing
# runs after torch and after an exported graph (``mdss_core.backends``).
RGBRunner = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
"""uint8 N×S×S×3 colour images (+ normal images or None) → raw N×G×S×S float32 maps."""
SDFRunner = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(N, 3) points, (P, k) patch index → (N,) best |sdf| per point (0 outside every patch)."""


def mdss_branch_maps(
    prepared: Sequence[PreparedSample],
    patches: Sequence[np.ndarray],
    run_rgb: RGBRunner,
    run_sdf: SDFRunner,
    config: MDSSConfig,
) -> list[BranchMaps]:
    """MDSS's maps of a batch from its two runners: the post-processing every backend shares."""
    groups = 2 if config.rgb.normals else 1
    rgb_maps = student_maps(prepared, run_rgb, config, groups)
    grids = point_grids_of(run_sdf, prepared, patches)
    sigma = config.sdf_blur_sigma
    return [
        BranchMaps(
            rgb=maps[0],
            sdf=blur_score_grid(grid, sigma),
            point_grid=grid,
            normals=maps[1] if len(maps) > 1 else None,
        )
        for maps, grid in zip(rgb_maps, grids, strict=True)
    ]


def student_maps(
    prepared: Sequence[PreparedSample], run_rgb: RGBRunner, config: MDSSConfig, groups: int
) -> list[np.ndarray]:
    """G×S×S student–teacher maps per sample (colour, then the normal image when the student
    sees it), zero outside the dilated foreground, blurred by ``config.rgb_blur_sigma``."""
    images = np.stack([p.rgb for p in prepared])
    normals = normal_images(prepared) if groups == 2 else None
    maps = run_rgb(images, normals)
    return [
        masked_blur(sample_maps, p.foreground_mask, config.rgb_blur_sigma)
        for p, sample_maps in zip(prepared, maps, strict=True)
    ]


def masked_blur(maps: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """float32 maps (S×S or G×S×S) zeroed outside ``mask``, each Gaussian-blurred by ``sigma``.

    Background pixels are outside what the networks were taught (masked loss): zeroed. A
    single cell's spike is noise more often than a defect (docs/experiments.md): blurred.
    """
    kept = np.where(mask, maps, 0.0).astype(np.float32)
    if sigma <= 0:
        return kept
    if kept.ndim == 2:
        return cv2.GaussianBlur(kept, (0, 0), sigma)
    return np.stack([cv2.GaussianBlur(m, (0, 0), sigma) for m in kept])


def sdf_patch_settings(config: MDSSConfig) -> PatchSettings:
    """How an SDF network (MDSS's, or DM-GRD's 3D branch) cuts a cloud into patches."""
    return PatchSettings(config.sdf.points_per_patch, config.sdf.coverage, config.seed)


def sdf_point_grids(
    sdf: SDFNet, device: str, prepared: Sequence[PreparedSample], patches: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each point's |sdf| at its pixel (unblurred S×S grids), the SDF network run once."""
    return point_grids_of(
        lambda points, index: point_scores(sdf, points, index, device), prepared, patches
    )


def point_grids_of(
    run_sdf: SDFRunner, prepared: Sequence[PreparedSample], patches: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Each point's |sdf| at its pixel (unblurred S×S grids), ``run_sdf`` called once.

    The clouds are stacked and each patch table shifted by its cloud's offset; a patch never
    spans two clouds, so every point keeps the minimum over its own sample's patches.
    """
    counts = [len(p.points) for p in prepared]
    offsets = np.cumsum([0, *counts[:-1]])
    points = np.concatenate([p.points for p in prepared])
    index = np.concatenate([table + offset for table, offset in zip(patches, offsets, strict=True)])
    scores = run_sdf(points, index)
    return [
        scores_to_map(part, p.pixel_index, p.size, sigma=0)
        for p, part in zip(prepared, np.split(scores, np.cumsum(counts)[:-1]), strict=True)
    ]
