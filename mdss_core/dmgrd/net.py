"""DM-GRD on the colour image plus MDSS's signed-distance network on the cloud, as one module.

:meth:`DMGRDNet.branch_maps` gives the common :class:`BranchMaps`: ``rgb`` is DM-GRD's
reverse-distillation map, ``sdf`` / ``point_grid`` the SDF network's, exactly as MDSS computes
them; fusion (``zmax`` with top-100 mean) sums their z-scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mdss_core.backbones.mobilenet_v2 import MobileNetV2Features
from mdss_core.config import MDSSConfig
from mdss_core.crd.network import ImageNorm, branch_channels, frozen_features, rd_map
from mdss_core.devices import images_per_pass
from mdss_core.dmgrd.network import GuidedStudent
from mdss_core.geometry.infer import blur_score_grid, point_scores
from mdss_core.geometry.network import SDFNet, build_sdf_net
from mdss_core.net import SDFRunner, masked_blur, point_grids_of, sdf_patch_settings
from mdss_core.prediction import BranchMaps
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.preprocess.ready import PatchSettings


class DMGRDNet(nn.Module):
    """``teacher`` (frozen), ``norm``, ``student`` (memory banks included) and ``sdf``."""

    def __init__(self, teacher: MobileNetV2Features, sdf: SDFNet, config: MDSSConfig) -> None:
        super().__init__()
        d = config.dmgrd
        self.config = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.norm = ImageNorm()
        channels = branch_channels(d.blocks)
        self.student = GuidedStudent(
            channels, d.embed_channels, config.preprocess.size, d.bank_size
        )
        self.sdf = sdf

    @classmethod
    def build(cls, config: MDSSConfig) -> tuple[DMGRDNet, dict[str, Any]]:
        from mdss_core.backbones.registry import load_backbone

        teacher, origin = load_backbone(tuple(config.dmgrd.blocks))
        torch.manual_seed(config.dmgrd.seed)
        return cls(teacher, build_sdf_net(config.sdf), config), {"kind": "backbone", **origin}

    @classmethod
    def empty(cls, config: MDSSConfig) -> DMGRDNet:
        teacher = MobileNetV2Features(tuple(config.dmgrd.blocks))
        return cls(teacher, build_sdf_net(config.sdf), config)

    def train(self, mode: bool = True) -> DMGRDNet:
        super().train(mode)
        self.teacher.eval()
        return self

    @property
    def device(self) -> str:
        return str(self.norm.mean.device)

    @property
    def patch_settings(self) -> PatchSettings:
        return sdf_patch_settings(self.config)

    def teacher_features(self, images: np.ndarray) -> list[torch.Tensor]:
        return frozen_features(self.teacher, self.norm, images, self.device)

    def rgb_maps(self, images: np.ndarray) -> np.ndarray:
        """Raw N×S×S reverse-distillation maps of uint8 images."""
        per_pass = images_per_pass(self.device, len(images))
        out = []
        for start in range(0, len(images), per_pass):
            feats = self.teacher_features(images[start : start + per_pass])
            with torch.no_grad():
                _, student = self.student(feats)
                out.append(rd_map(feats, student, images.shape[1]).cpu().numpy())
        return np.concatenate(out)

    def branch_maps(
        self,
        prepared: Sequence[PreparedSample],
        patches: Sequence[np.ndarray] | None = None,
    ) -> list[BranchMaps]:
        """Each sample's maps at model size (see :func:`dmgrd_branch_maps`)."""
        if patches is None:
            patches = [self.patch_settings.cut(p.points) for p in prepared]
        return dmgrd_branch_maps(prepared, patches, self.rgb_maps, self.run_sdf, self.config)

    def run_sdf(self, points: np.ndarray, patches: np.ndarray) -> np.ndarray:
        """The SDF network's torch part (an :data:`~mdss_core.net.SDFRunner`)."""
        return point_scores(self.sdf, points, patches, self.device)


def dmgrd_branch_maps(
    prepared: Sequence[PreparedSample],
    patches: Sequence[np.ndarray],
    run_rgb: Callable[[np.ndarray], np.ndarray],
    run_sdf: SDFRunner,
    config: MDSSConfig,
) -> list[BranchMaps]:
    """DM-GRD's maps from its runners (``run_rgb``: uint8 images → raw N×S×S maps): RGB zero
    outside the dilated foreground and blurred by ``dmgrd.blur_sigma``; 3D as MDSS. The
    post-processing every backend shares."""
    raw = run_rgb(np.stack([p.rgb for p in prepared]))
    grids = point_grids_of(run_sdf, prepared, patches)
    out = []
    for p, m, grid in zip(prepared, raw, grids, strict=True):
        kept = masked_blur(m, p.foreground_mask, config.dmgrd.blur_sigma)
        sdf_map = blur_score_grid(grid, config.sdf_blur_sigma)
        out.append(BranchMaps(rgb=kept, sdf=sdf_map, point_grid=grid))
    return out
