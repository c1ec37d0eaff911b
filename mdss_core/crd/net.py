"""CRD as one torch module, from prepared samples to the maps every detector gives.

:meth:`CRDNet.branch_maps` returns the same :class:`BranchMaps` as MDSS's network: ``rgb`` is
the colour branch's map, ``sdf`` the 3D branch's (the normal or depth image's map), and
``point_grid`` that map at each object point's pixel, which the 3D view colours the cloud by.
Prediction, calibration, evaluation and the GUI therefore never ask which detector they hold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from mdss_core.backbones.mobilenet_v2 import MobileNetV2Features
from mdss_core.config import MDSSConfig
from mdss_core.crd.inputs import images_3d, images_rgb
from mdss_core.crd.network import CRDBranch, ImageNorm, branch_channels, frozen_features, rd_map
from mdss_core.devices import images_per_pass
from mdss_core.net import masked_blur
from mdss_core.prediction import BranchMaps
from mdss_core.preprocess.pipeline import PreparedSample


class CRDNet(nn.Module):
    """The frozen teacher and the two branches (``rgb_branch``, ``geo_branch``).

    ``state_dict()`` keys: ``teacher.*`` (MobileNetV2 blocks up to the last tap), ``norm.*``,
    ``rgb_branch.*``, ``geo_branch.*``: the tensors of a model file.
    """

    patch_settings = None  # no point patches: the 3D branch sees the cloud as an image

    def __init__(self, teacher: MobileNetV2Features, config: MDSSConfig) -> None:
        super().__init__()
        crd = config.crd
        self.config = config
        self.teacher = teacher.eval().requires_grad_(False)
        self.norm = ImageNorm()
        channels = branch_channels(crd.blocks)
        self.rgb_branch = CRDBranch(channels, crd.embed_channels, crd.crossmodal)
        self.geo_branch = CRDBranch(channels, crd.embed_channels, crd.crossmodal)

    @classmethod
    def build(cls, config: MDSSConfig) -> tuple[CRDNet, dict[str, Any]]:
        """A new network on the shipped ImageNet backbone, and the backbone's origin."""
        from mdss_core.backbones.registry import load_backbone

        teacher, origin = load_backbone(tuple(config.crd.blocks))
        torch.manual_seed(config.crd.seed)
        return cls(teacher, config), {"kind": "backbone", **origin}

    @classmethod
    def empty(cls, config: MDSSConfig) -> CRDNet:
        """The architecture with untrained weights, for loading a model file into."""
        return cls(MobileNetV2Features(tuple(config.crd.blocks)), config)

    def train(self, mode: bool = True) -> CRDNet:
        super().train(mode)
        self.teacher.eval()  # frozen, batch-norm statistics included
        return self

    @property
    def device(self) -> str:
        return str(self.norm.mean.device)

    # ------------------------------------------------------------------ features
    def teacher_features(self, images: np.ndarray) -> list[torch.Tensor]:
        """Teacher features of uint8 N×S×S×3 images (on the model's device, no gradient)."""
        return frozen_features(self.teacher, self.norm, images, self.device)

    def maps_of(self, rgb: np.ndarray, geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (unmasked, unblurred) N×S×S maps of both branches for one pass."""
        size = rgb.shape[1]
        t_rgb = self.teacher_features(rgb)
        t_geo = self.teacher_features(geo)
        with torch.no_grad():
            m_rgb = rd_map(t_rgb, self.rgb_branch.students(t_rgb, t_geo), size)
            m_geo = rd_map(t_geo, self.geo_branch.students(t_geo, t_rgb), size)
        return m_rgb.cpu().numpy(), m_geo.cpu().numpy()

    def run_maps(self, rgb: np.ndarray, geo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The torch part (a :data:`CRDRunner`): raw maps of both branches, in passes."""
        per_pass = images_per_pass(self.device, len(rgb))
        parts = [
            self.maps_of(rgb[i : i + per_pass], geo[i : i + per_pass])
            for i in range(0, len(rgb), per_pass)
        ]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    # ------------------------------------------------------------------ the detector seam
    def branch_maps(
        self,
        prepared: Sequence[PreparedSample],
        patches: Sequence[np.ndarray] | None = None,
    ) -> list[BranchMaps]:
        """Each sample's maps at model size (see :func:`crd_branch_maps`); ``patches`` is
        accepted for the common interface and not used."""
        return crd_branch_maps(prepared, self.run_maps, self.config)


CRDRunner = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""uint8 N×S×S×3 colour and 3D images → raw N×S×S maps of the colour and 3D branches."""


def crd_branch_maps(
    prepared: Sequence[PreparedSample], run_maps: CRDRunner, config: MDSSConfig
) -> list[BranchMaps]:
    """CRD's maps from its runner, zero outside the dilated foreground (the part: the table
    and fixtures around it are not inspected), blurred by ``crd.blur_sigma``: the
    post-processing every backend shares."""
    rgb_maps, geo_maps = run_maps(images_rgb(prepared), images_3d(prepared, config.crd.input_3d))
    sigma = config.crd.blur_sigma
    out = []
    for p, m_rgb, m_geo in zip(prepared, rgb_maps, geo_maps, strict=True):
        m_rgb, m_geo = (masked_blur(m, p.foreground_mask, sigma) for m in (m_rgb, m_geo))
        grid = np.where(p.object_mask, m_geo, 0.0).astype(np.float32)
        out.append(BranchMaps(rgb=m_rgb, sdf=m_geo, point_grid=grid))
    return out
