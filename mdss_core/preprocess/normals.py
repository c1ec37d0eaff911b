"""The organized cloud seen as an image: surface normals as RGB (the 3D input of the student).

Pretrained image features separate defective from normal cable glands on a normal image almost
as well as on the colour image (``../shared/reference/method_facts.md`` §9, and our own dev-set
runs in ``docs/experiments.md``), where the signed distance alone does not. Normals come from
central differences of the plane-removed cloud after a masked Gaussian smoothing (σ = 1 px:
nearest-neighbour resizing repeats points, which would give zero differences), oriented towards
the camera, and mapped from [-1, 1] to [0, 255]. Pixels without a point (or without valid
neighbours) are black, like the background of the masked colour image.
"""

from __future__ import annotations

import cv2
import numpy as np

SMOOTHING_SIGMA = 1.0


def normal_image(xyz: np.ndarray, valid: np.ndarray, sigma: float = SMOOTHING_SIGMA) -> np.ndarray:
    """uint8 H×W×3 image of unit normals of an organized H×W×3 cloud (``valid`` = has a point)."""
    if xyz.ndim != 3 or xyz.shape[2] != 3 or valid.shape != xyz.shape[:2]:
        raise ValueError(f"expected an H×W×3 cloud and an H×W mask, got {xyz.shape}, {valid.shape}")
    weight = valid.astype(np.float32)
    points = xyz.astype(np.float32) * weight[..., None]
    if sigma > 0:
        # Normalised convolution: holes and the object's rim do not pull points towards 0.
        total = cv2.GaussianBlur(points, (0, 0), sigma)
        norm = cv2.GaussianBlur(weight, (0, 0), sigma)
        points = np.where(norm[..., None] > 1e-3, total / np.maximum(norm, 1e-6)[..., None], 0.0)
    dx = np.zeros_like(points)
    dy = np.zeros_like(points)
    dx[:, 1:-1] = points[:, 2:] - points[:, :-2]
    dy[1:-1] = points[2:] - points[:-2]
    normal = np.cross(dx, dy)
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    good = valid & (length[..., 0] > 1e-12)
    normal = normal / np.maximum(length, 1e-12)
    normal = np.where(normal[..., 2:3] > 0, -normal, normal)  # the camera looks along +z
    image = np.clip((normal + 1.0) * 127.5, 0, 255).astype(np.uint8)
    image[~good] = 0
    return image
