"""Distillation target of EfficientAD itself: WideResNet-101-2 layers 2 + 3 (a user's file).

Target features (per training image): the backbone sees the image at twice the PDN size; the
outputs of layers 2 and 3 are locally averaged (3×3), layer 3 is bilinearly up-sampled to the
layer-2 grid (S/4 × S/4, the padded PDN's output grid) and concatenated, then reduced to 384
channels by a FIXED RANDOM GAUSSIAN PROJECTION (seeded). The distillation loop normalises them
per channel (``mdss_core.rgb.teacher_distill``).

Why a random projection rather than PCA: it needs no fitting pass, does not depend on the
(possibly few) images in the folder, and by Johnson–Lindenstrauss it preserves distances
between patch descriptors — what anomaly scoring relies on. PCA + channel normalisation would
whiten the low-variance components, giving noise-dominated directions the same weight as the
dominant ones. (EfficientAD's own reduction, PatchCore's channel-wise adaptive averaging, is
also a fixed data-free linear map; a Gaussian one just does not depend on channel order.)
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.errors import ModelFileError
from mdss_core.rgb.pdn import PDN_OUT_CHANNELS


@dataclass(frozen=True)
class BackboneSpec:
    """A torchvision-style bottleneck ResNet truncated after layer 3.

    The default is WideResNet-101-2 (blocks 3/4/23, width 128 per group). Key names follow
    torchvision (``conv1``, ``bn1``, ``layerK.i.convJ``, ``…downsample.0/1``), so a
    ``wide_resnet101_2`` state dict loads directly; ``layer4.*`` and ``fc.*`` are ignored.
    """

    blocks: tuple[int, int, int] = (3, 4, 23)
    width_per_group: int = 128
    base_planes: int = 64
    name: str = "wide_resnet101_2"


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, width_per_group: int) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64)
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + shortcut)


class ResNetLayers23(nn.Module):
    """Stem + layers 1–3 of a bottleneck ResNet; ``forward`` returns (layer2, layer3) features."""

    def __init__(self, spec: BackboneSpec = BackboneSpec()) -> None:
        super().__init__()
        planes = spec.base_planes
        self.conv1 = nn.Conv2d(3, planes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = planes
        layers = []
        for stage, count in enumerate(spec.blocks):
            stage_planes = planes * 2**stage
            blocks = []
            for i in range(count):
                stride = 2 if (stage > 0 and i == 0) else 1
                blocks.append(_Bottleneck(channels, stage_planes, stride, spec.width_per_group))
                channels = stage_planes * _Bottleneck.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.channels = (planes * 2 * 4, planes * 4 * 4)  # layer2, layer3 outputs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        feature2 = self.layer2(self.layer1(x))
        return feature2, self.layer3(feature2)


def load_backbone(path: str | Path, spec: BackboneSpec = BackboneSpec()) -> ResNetLayers23:
    """Read backbone weights (torch state dict or safetensors, torchvision key names)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "backbone weights file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a bad file
            raise ModelFileError(path, f"not a readable safetensors file ({exc})") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ModelFileError(path, "not a plain state dict; refusing to unpickle") from exc
        except (RuntimeError, OSError, EOFError, ValueError) as exc:
            raise ModelFileError(path, f"not a readable torch file ({exc})") from exc
    if not isinstance(state, dict):
        raise ModelFileError(path, f"holds a {type(state).__name__}, not a state dict")
    backbone = ResNetLayers23(spec)
    expected = backbone.state_dict()
    weights: dict[str, torch.Tensor] = {}
    for key, tensor in expected.items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                weights[key] = tensor  # unused in eval mode; older files lack it
                continue
            raise ModelFileError(path, f"backbone tensor {key} is missing (not a {spec.name}?)")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelFileError(
                path,
                f"backbone tensor {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)} for {spec.name}",
            )
        weights[key] = state[key]
    backbone.load_state_dict(weights)
    return backbone.eval()


class WRNTarget(nn.Module):
    """Backbone features → 384-channel raw targets on the S/4 grid of a model-size image."""

    def __init__(
        self, backbone: ResNetLayers23, out_channels: int = PDN_OUT_CHANNELS, seed: int = 0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.out_channels = out_channels
        in_channels = sum(backbone.channels)
        generator = torch.Generator().manual_seed(int(seed))
        projection = torch.randn(out_channels, in_channels, generator=generator)
        self.register_buffer("projection", projection / math.sqrt(in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        large = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        feature2, feature3 = self.backbone(large)
        # PatchCore-style local aggregation: each cell also describes its 3×3 neighbourhood.
        feature2 = F.avg_pool2d(feature2, 3, stride=1, padding=1)
        feature3 = F.avg_pool2d(feature3, 3, stride=1, padding=1)
        feature3 = F.interpolate(
            feature3, size=feature2.shape[-2:], mode="bilinear", align_corners=False
        )
        features = torch.cat([feature2, feature3], dim=1)
        return torch.einsum("oc,nchw->nohw", self.projection, features)
