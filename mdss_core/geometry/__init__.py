"""Geometry branch: signed-distance network trained on normal point-cloud patches (paper 3.2)."""

from mdss_core.geometry.config import SDFConfig
from mdss_core.geometry.infer import point_scores, scores_to_map
from mdss_core.geometry.network import PatchFrame, SDFNet, build_sdf_net, patch_frame
from mdss_core.geometry.train import train_sdf

__all__ = [
    "PatchFrame",
    "SDFConfig",
    "SDFNet",
    "build_sdf_net",
    "patch_frame",
    "point_scores",
    "scores_to_map",
    "train_sdf",
]
