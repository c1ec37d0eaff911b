"""Training images for teacher distillation: read once, augmented on the training device.

A distillation corpus is a few thousand images, not ImageNet's million, so every step draws a
fresh random view of each image: a zoom (crop side 35–100 % of the image), a shift, a flip or
quarter turn, mild brightness / contrast changes and, like EfficientAD, grayscale with
probability 0.1. The views are made with one ``grid_sample`` per batch on the device that
trains, so a GPU is never starved by image decoding on the CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mdss_core.errors import DataError
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.pdn import IMAGENET_MEAN, IMAGENET_STD

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GRAYSCALE_PROBABILITY = 0.1
MIN_CROP = 0.35  # smallest crop side as a share of the image side
JITTER = 0.2  # brightness and contrast factors drawn from 1 ± JITTER


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


def read_square(path: Path, side: int) -> np.ndarray:
    """An image file as uint8 side×side×3 RGB: centre square of the shorter side, resized."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(path, "cannot read image")
    h, w = image.shape[:2]
    short = min(h, w)
    top, left = (h - short) // 2, (w - short) // 2
    image = image[top : top + short, left : left + short]
    interpolation = cv2.INTER_AREA if short > side else cv2.INTER_LINEAR
    image = cv2.resize(image, (side, side), interpolation=interpolation)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ImageBank:
    """Every image as one uint8 N×3×side×side tensor on ``device``, and random views of them."""

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 N×3×S×S images, got {tuple(images.shape)}")
        self.images = images.to(device)
        self.device = device
        view = (1, 3, 1, 1)
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(view)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(view)

    @classmethod
    def from_files(
        cls,
        files: list[Path],
        side: int,
        device: torch.device,
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
    ) -> ImageBank:
        stack = np.empty((len(files), side, side, 3), dtype=np.uint8)
        for i, path in enumerate(files):
            check_cancel(cancel, "reading distillation images")
            stack[i] = read_square(path, side)
            if i % 64 == 0 or i + 1 == len(files):
                report(progress, "distill-images", i + 1, len(files), path.name)
        return cls(torch.from_numpy(stack).permute(0, 3, 1, 2).contiguous(), device)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def side(self) -> int:
        return int(self.images.shape[-1])

    def whole(self, index: torch.Tensor) -> torch.Tensor:
        """The images themselves, ImageNet-normalised float N×3×S×S (held-out losses)."""
        return self._normalise(self.images[index.to(self.device)].float() / 255.0)

    def views(self, count: int, generator: torch.Generator) -> torch.Tensor:
        """``count`` random augmented views, ImageNet-normalised float N×3×S×S."""
        g = generator
        index = torch.randint(len(self), (count,), generator=g)
        scale = MIN_CROP + (1.0 - MIN_CROP) * torch.rand(count, generator=g)
        shift = (1.0 - scale)[:, None] * (2.0 * torch.rand(count, 2, generator=g) - 1.0)
        turns = torch.randint(4, (count,), generator=g).float() * (math.pi / 2)
        flip = torch.where(torch.rand(count, generator=g) < 0.5, -1.0, 1.0)
        cos, sin = torch.cos(turns) * scale, torch.sin(turns) * scale
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
                torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )
        brightness = 1.0 + JITTER * (2.0 * torch.rand(count, 1, 1, 1, generator=g) - 1.0)
        contrast = 1.0 + JITTER * (2.0 * torch.rand(count, 1, 1, 1, generator=g) - 1.0)
        gray = torch.rand(count, 1, 1, 1, generator=g) < GRAYSCALE_PROBABILITY

        source = self.images[index.to(self.device)].float() / 255.0
        grid = F.affine_grid(theta.to(self.device), list(source.shape), align_corners=False)
        view = F.grid_sample(source, grid, mode="bilinear", align_corners=False)
        mean = view.mean(dim=(1, 2, 3), keepdim=True)
        view = (view - mean) * contrast.to(self.device) + mean * brightness.to(self.device)
        luma = view * torch.tensor([0.299, 0.587, 0.114], device=self.device).view(1, 3, 1, 1)
        view = torch.where(gray.to(self.device), luma.sum(1, keepdim=True).expand_as(view), view)
        return self._normalise(view.clamp(0.0, 1.0))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self._mean) / self._std
