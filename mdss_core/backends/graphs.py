"""The torch part of each detector as a module with array inputs and outputs, for ONNX export.

Each graph takes what the numpy side has (images as float32 0–255 N×S×S×C, raw patch points)
and gives the raw maps / scores the shared post-processing expects (``mdss_core.net``,
``mdss_core.crd.net``, ``mdss_core.dmgrd.net``). Normalisation happens inside the graph, so
a deployed runtime needs no preprocessing code of its own beyond the numpy pipeline.
"""

from __future__ import annotations

import torch
from torch import nn

from mdss_core.crd.network import rd_map
from mdss_core.geometry.network import SDFNet, patch_frame
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.maps import upsample_map
from mdss_core.rgb.pdn import IMAGENET_MEAN, IMAGENET_STD


def _imagenet(images: torch.Tensor) -> torch.Tensor:
    """float 0–255 N×H×W×3G → ImageNet-normalised N×3G×H×W (as ``normalize_images`` per image)."""
    groups = images.shape[-1] // 3
    mean = torch.tensor(IMAGENET_MEAN * groups).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD * groups).view(1, -1, 1, 1)
    return (images.permute(0, 3, 1, 2) / 255.0 - mean) / std


class MDSSRGBGraph(nn.Module):
    """images (N×S×S×3G: colour, then normal image) → maps N×G×S×S (the raw student maps)."""

    inputs = ("images",)
    outputs = ("maps",)

    def __init__(self, branch: RGBBranch) -> None:
        super().__init__()
        self.branch = branch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = _imagenet(images)
        return upsample_map(self.branch(x).float(), tuple(x.shape[-2:]))


class SDFGraph(nn.Module):
    """patches (B×k×3, the cloud's points) → abs_sdf B×k: |f| of each point in its patch."""

    inputs = ("patches",)
    outputs = ("abs_sdf",)

    def __init__(self, sdf: SDFNet) -> None:
        super().__init__()
        self.sdf = sdf

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        # Grad mode picks the encoder's convolution path: its inference shortcut reads the batch
        # size as a Python number, which a traced graph would freeze.
        with torch.enable_grad():
            local = patch_frame(patches).apply(patches)
            return self.sdf.decode(self.sdf.encode(local), local).abs()


class CRDGraph(nn.Module):
    """rgb, geo (N×S×S×3, 0–255) → rgb_map, geo_map N×S×S (raw, unmasked)."""

    inputs = ("rgb", "geo")
    outputs = ("rgb_map", "geo_map")

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, rgb: torch.Tensor, geo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net, size = self.net, rgb.shape[1]
        t_rgb = net.teacher(net.norm(rgb.permute(0, 3, 1, 2)))
        t_geo = net.teacher(net.norm(geo.permute(0, 3, 1, 2)))
        m_rgb = rd_map(t_rgb, net.rgb_branch.students(t_rgb, t_geo), size)
        m_geo = rd_map(t_geo, net.geo_branch.students(t_geo, t_rgb), size)
        return m_rgb, m_geo


class DMGRDGraph(nn.Module):
    """images (N×S×S×3, 0–255) → map N×S×S (raw reverse-distillation map; banks as constants)."""

    inputs = ("images",)
    outputs = ("map",)

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.net.teacher(self.net.norm(images.permute(0, 3, 1, 2)))
        _, student = self.net.student(feats)
        return rd_map(feats, student, images.shape[1])


def detector_graphs(net: nn.Module) -> dict[str, tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    """Graph name → (module, example inputs of batch 2) for a torch detector network."""
    config = net.config
    size = config.preprocess.size
    method = config.method

    def images(channels: int = 3) -> torch.Tensor:
        return torch.rand(2, size, size, channels) * 255.0

    sdf_example = (torch.rand(2, config.sdf.points_per_patch, 3),)
    if method == "crd":
        return {"crd": (CRDGraph(net), (images(), images()))}
    if method == "dmgrd":
        return {"rgb": (DMGRDGraph(net), (images(),)), "sdf": (SDFGraph(net.sdf), sdf_example)}
    return {
        "rgb": (MDSSRGBGraph(net.rgb), (images(3 * net.rgb.groups),)),
        "sdf": (SDFGraph(net.sdf), sdf_example),
    }
