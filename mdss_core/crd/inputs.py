"""The two images a CRD model sees per sample: the colour image and the cloud as an image.

The 3D image is either the surface-normal image the MDSS student also sees
(:func:`mdss_core.preprocess.normals.normal_image`) or, as in CRD's first version, the depth:
the plane-removed cloud's z inside the object, min-max scaled there (near = bright), holes
inside the object filled from their neighbours, repeated to three channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mdss_core.preprocess.normals import normal_image
from mdss_core.preprocess.pipeline import PreparedSample


def depth_image(xyz: np.ndarray, valid: np.ndarray, region: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 depth image of the points in ``valid``; holes inside ``region`` filled."""
    z = xyz[..., 2]
    image = np.zeros(z.shape, np.uint8)
    if valid.any():
        near, far = float(z[valid].min()), float(z[valid].max())
        scaled = (far - z) / (far - near) if far > near else np.ones_like(z)
        image[valid] = np.clip(1.0 + 254.0 * scaled[valid], 1, 255).astype(np.uint8)
        holes = (region & ~valid).astype(np.uint8)
        if holes.any():
            image = cv2.inpaint(image, holes, 3, cv2.INPAINT_TELEA)
            image[~region & ~valid] = 0
    return np.repeat(image[..., None], 3, axis=2)


def images_3d(prepared: Sequence[PreparedSample], kind: str) -> np.ndarray:
    """N×S×S×3 uint8 3D images of prepared samples (``kind``: "normals" or "depth")."""
    if kind == "depth":
        return np.stack([depth_image(p.xyz, p.object_mask, p.foreground_mask) for p in prepared])
    return np.stack([normal_image(p.xyz, p.object_mask) for p in prepared])


def images_rgb(prepared: Sequence[PreparedSample]) -> np.ndarray:
    return np.stack([p.rgb for p in prepared])
