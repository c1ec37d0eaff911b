"""Make a teacher the EfficientAD way: distil WideResNet-101-2 features into a padded PDN.

Target features (per training image): the backbone sees the image at twice the PDN size; the
outputs of layers 2 and 3 are locally averaged (3×3), layer 3 is bilinearly up-sampled to the
layer-2 grid (S/4 × S/4, the padded PDN's output grid) and concatenated, then reduced to 384
channels by a FIXED RANDOM GAUSSIAN PROJECTION (seeded) and normalised per channel.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.errors import DataError, ModelFileError
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.pdn import PDN, PDN_OUT_CHANNELS, init_pdn_, normalize_images
from mdss_core.rgb.teacher import file_sha256

DEFAULT_DISTILL_STEPS = 60_000  # EfficientAD's pretraining length (GPU, batch 16)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
STATS_IMAGES = 64  # images used to estimate the target channel mean/std
GRAYSCALE_PROBABILITY = 0.1


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


class FeatureTarget(nn.Module):
    """Backbone features → 384-channel distillation targets on the S/4 grid (see module doc)."""

    def __init__(
        self, backbone: ResNetLayers23, out_channels: int = PDN_OUT_CHANNELS, seed: int = 0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        in_channels = sum(backbone.channels)
        generator = torch.Generator().manual_seed(int(seed))
        projection = torch.randn(out_channels, in_channels, generator=generator)
        self.register_buffer("projection", projection / math.sqrt(in_channels))
        self.register_buffer("mean", torch.zeros(1, out_channels, 1, 1))
        self.register_buffer("std", torch.ones(1, out_channels, 1, 1))

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        feature2, feature3 = self.backbone(x)
        # PatchCore-style local aggregation: each cell also describes its 3×3 neighbourhood.
        feature2 = F.avg_pool2d(feature2, 3, stride=1, padding=1)
        feature3 = F.avg_pool2d(feature3, 3, stride=1, padding=1)
        feature3 = F.interpolate(
            feature3, size=feature2.shape[-2:], mode="bilinear", align_corners=False
        )
        features = torch.cat([feature2, feature3], dim=1)
        return torch.einsum("oc,nchw->nohw", self.projection, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.raw(x) - self.mean) / self.std

    @torch.no_grad()
    def fit_normalisation(self, batches: list[torch.Tensor]) -> None:
        outputs = torch.cat([self.raw(x).transpose(0, 1).flatten(1) for x in batches], dim=1)
        self.mean.copy_(outputs.mean(1).view_as(self.mean))
        self.std.copy_(outputs.std(1).clamp_min(1e-6).view_as(self.std))


def list_images(image_dir: str | Path) -> list[Path]:
    """Image files under ``image_dir`` (recursive, sorted); none → ``DataError``."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise DataError(image_dir, "image folder not found")
    files = sorted(
        p for p in image_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise DataError(image_dir, f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return files


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(path, "cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _resized(image: np.ndarray, side: int) -> np.ndarray:
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(image, (side, side), interpolation=interpolation)


def _to_gray(image: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(gray[..., None], 3, axis=2)


def _load_pair(
    files: list[Path], index: np.ndarray, image_size: int, gray: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Images at the PDN size and at twice it (for the backbone), grayscaled where asked."""
    small, large = [], []
    for i, make_gray in zip(index, gray, strict=True):
        image = _read_rgb(files[int(i)])
        if make_gray:
            image = _to_gray(image)
        small.append(_resized(image, image_size))
        large.append(_resized(image, 2 * image_size))
    return np.stack(small), np.stack(large)


def distill_teacher(
    backbone_weights: str | Path,
    image_dir: str | Path,
    size: str = "small",
    steps: int = DEFAULT_DISTILL_STEPS,
    image_size: int = 256,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    seed: int = 0,
    *,
    backbone: BackboneSpec = BackboneSpec(),
    batch_size: int = 16,
    lr: float = 1e-4,
    weight_decay: float = 1e-5,
    device: str | torch.device = "cpu",
) -> tuple[PDN, dict[str, Any]]:
    """Train a padded PDN to reproduce normalised backbone features (MSE, Adam, grayscale 0.1).

    Returns the teacher as an UNPADDED PDN (same weights; padding only served the 64×64 target
    grid) and a JSON-serialisable origin with ``kind="distilled"``. Progress: ``stage="distill"``
    with metric ``loss``; ``Cancelled`` between steps.
    """
    if image_size % 4:
        raise ValueError("image_size must be a multiple of 4 (the PDN's output stride)")
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be at least 1")
    device = torch.device(device)
    files = list_images(image_dir)
    rng = np.random.default_rng(seed)
    target = FeatureTarget(load_backbone(backbone_weights, backbone), seed=seed).to(device).eval()
    check_cancel(cancel, "teacher distillation")

    report(progress, "distill", 0, steps, "feature statistics")
    stats_index = np.arange(min(len(files), STATS_IMAGES))
    stats_batches = []
    for start in range(0, len(stats_index), batch_size):
        part = stats_index[start : start + batch_size]
        _, large = _load_pair(files, part, image_size, np.zeros(len(part), dtype=bool))
        stats_batches.append(normalize_images(large).to(device))
    target.fit_normalisation(stats_batches)
    del stats_batches

    student = init_pdn_(PDN(size, padding=True), seed, "torch-default").to(device).train()
    optimizer = torch.optim.Adam(student.parameters(), lr=lr, weight_decay=weight_decay)
    loss_value = float("nan")
    for step in range(steps):
        check_cancel(cancel, "teacher distillation")
        index = rng.integers(0, len(files), size=batch_size)
        gray = rng.random(batch_size) < GRAYSCALE_PROBABILITY
        small, large = _load_pair(files, index, image_size, gray)
        with torch.no_grad():
            wanted = target(normalize_images(large).to(device))
        predicted = student(normalize_images(small).to(device))
        if predicted.shape != wanted.shape:
            raise ValueError(f"PDN grid {tuple(predicted.shape)} ≠ target {tuple(wanted.shape)}")
        loss = F.mse_loss(predicted, wanted)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        report(progress, "distill", step + 1, steps, loss=loss_value)

    teacher = PDN(size)
    teacher.load_state_dict({k: v.detach().cpu() for k, v in student.state_dict().items()})
    origin = {
        "kind": "distilled",
        "size": size,
        "backbone": {
            "file": Path(backbone_weights).name,
            "sha256": file_sha256(backbone_weights),
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(backbone).items()},
        },
        "images": len(files),
        "steps": steps,
        "image_size": image_size,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "projection": "gaussian-random",
        "seed": seed,
        "final_loss": loss_value,
    }
    return teacher.eval(), origin
