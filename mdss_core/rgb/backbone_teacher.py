"""A pretrained backbone used directly as the RGB teacher (no distillation).

The image (ImageNet-normalised, model size S) is up-sampled ``scale`` times (EfficientAD feeds
its backbone twice the PDN size); the outputs of the chosen MobileNetV2 blocks are locally
averaged over 3×3 cells (each cell then also describes its neighbourhood, as PatchCore and
EfficientAD's targets do) and brought to the S/4 grid: finer blocks by average pooling (no
aliasing), coarser ones by bilinear up-sampling. The concatenation is cropped by 4 cells on
each side so that cell i sits where the UNPADDED PDN student's cell i sits (centred near pixel
4i + 16), which lets the student, its exact crops and the map up-sampling stay unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.backbones.mobilenet_v2 import MobileNetV2Features, block_stride
from mdss_core.rgb.pdn import MAP_PAD, STRIDE, pdn_output_size


class BackboneTeacher(nn.Module):
    """Frozen MobileNetV2 blocks → N×C×g×g features aligned with the PDN student's g×g grid."""

    def __init__(
        self, backbone: MobileNetV2Features, scale: float = 2.0, aligned: bool = True
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.scale = float(scale)
        # False: the whole S/4 grid, the target of a PADDED PDN during distillation.
        self.aligned = aligned
        self.out_channels = int(sum(backbone.channels))
        for parameter in self.backbone.parameters():
            parameter.requires_grad_(False)

    @property
    def taps(self) -> tuple[int, ...]:
        return self.backbone.taps

    def train(self, mode: bool = True) -> BackboneTeacher:
        super().train(mode)
        self.backbone.eval()  # BatchNorm statistics are ImageNet's and stay so
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = x.shape[-1]
        if x.shape[-2] != side:
            raise ValueError(f"the teacher expects square inputs, got {tuple(x.shape[-2:])}")
        grid = side // STRIDE
        cells = pdn_output_size(side)
        large = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        parts = []
        for tap, feature in zip(self.taps, self.backbone(large), strict=True):
            feature = F.avg_pool2d(feature, 3, stride=1, padding=1, count_include_pad=False)
            parts.append(_to_grid(feature, grid, block_stride(tap) / self.scale))
        features = torch.cat(parts, dim=1)
        if not self.aligned:
            return features
        return features[..., MAP_PAD : MAP_PAD + cells, MAP_PAD : MAP_PAD + cells]


def _to_grid(feature: torch.Tensor, grid: int, stride: float) -> torch.Tensor:
    """Resample a feature map of the given stride (in model pixels) onto the stride-4 grid."""
    if feature.shape[-1] == grid:
        return feature
    if stride < STRIDE and feature.shape[-1] % grid == 0:
        factor = feature.shape[-1] // grid
        return F.avg_pool2d(feature, factor)
    return F.interpolate(feature, size=(grid, grid), mode="bilinear", align_corners=False)


def teacher_grid(side: int) -> int:
    """Side of the teacher's (and the unpadded student's) output for a model size ``side``."""
    return pdn_output_size(side)


def describe(taps: Sequence[int], scale: float) -> str:
    return f"MobileNetV2 blocks {'/'.join(str(t) for t in taps)} at {scale:g}× input"
