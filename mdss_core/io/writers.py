"""Image writers: every PNG and TIFF mdss writes goes through here.

Encoded in memory, then written by Python: a failed write then raises an ``OSError`` that
says why (``no space left on device``), where ``cv2.imwrite`` only returns False and tifffile
loses the errno ("N requested and M written"). Callers decide about atomicity and wording.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import tifffile


def write_png(path: str | Path, image: np.ndarray) -> None:
    """An RGB (H×W×3) or grey (H×W) uint8 image as a PNG."""
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoder failed")
    Path(path).write_bytes(encoded.tobytes())


def write_tiff(path: str | Path, image: np.ndarray) -> None:
    """An array (e.g. a float32 map or an organized cloud) as a TIFF."""
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    Path(path).write_bytes(buffer.getvalue())
