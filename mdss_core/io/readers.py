"""File readers with validation: every failure is a one-line DataError naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import tifffile

from mdss_core.errors import DataError

log = logging.getLogger(__name__)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit colour image as RGB uint8 H×W×3 (grey is expanded, alpha dropped)."""
    path = Path(path)
    _require_file(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DataError(path, "cannot read image (unreadable, truncated or not an image)")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return check_rgb(image, path)


def check_rgb(rgb: np.ndarray, path: str | Path) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise DataError(path, f"expected an H×W×3 colour image, got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise DataError(path, f"expected 8-bit colour (uint8), got {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def read_xyz(path: str | Path) -> np.ndarray:
    """Read an organized point cloud TIFF as float32 H×W×3 with missing points = (0, 0, 0)."""
    path = Path(path)
    _require_file(path)
    try:
        with tifffile.TiffFile(path) as tif:
            _check_tiff_extent(tif, path)
            xyz = tif.asarray()
    except DataError:
        raise
    except MemoryError:
        raise DataError(path, "point cloud too large to load (out of memory)") from None
    except Exception as exc:  # tifffile raises many types for damaged files
        raise DataError(path, f"cannot read TIFF ({type(exc).__name__}: {exc})") from None
    if xyz.size == 0:
        raise DataError(path, "cannot read TIFF (no image data: truncated or damaged file)")
    return check_xyz(xyz, path)


def _check_tiff_extent(tif: tifffile.TiffFile, path: Path) -> None:
    """Refuse a TIFF whose header points past the end of the file, before reading it.

    A truncated file would otherwise first get an array of the size its header claims (1.2 GB
    for a 10 000 × 10 000 cloud) and only then fail to fill it.
    """
    page = tif.pages.first
    size = tif.filehandle.size
    pairs = zip(page.dataoffsets, page.databytecounts, strict=False)  # damaged: may differ
    end = max((int(o) + int(c) for o, c in pairs if c), default=0)
    if end > size:
        shape = "x".join(str(n) for n in page.shape)
        claimed = int(np.prod(page.shape)) * np.dtype(page.dtype).itemsize
        raise DataError(
            path,
            f"truncated TIFF: its header describes {shape} {page.dtype} data "
            f"({_size_text(claimed)}) but the file ends after {_size_text(size)}",
        )


def _size_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_xyz(xyz: np.ndarray, path: str | Path) -> np.ndarray:
    if xyz.ndim == 3 and xyz.shape[0] == 3 and xyz.shape[2] != 3:
        xyz = np.moveaxis(xyz, 0, 2)  # planar TIFF layout (3, H, W)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise DataError(path, f"expected an organized cloud H×W×3 (x, y, z), got shape {xyz.shape}")
    if not np.issubdtype(xyz.dtype, np.floating):
        raise DataError(path, f"expected float xyz coordinates, got {xyz.dtype}")
    xyz = np.array(xyz, dtype=np.float32)  # a copy: callers may edit it freely
    finite = np.isfinite(xyz).all(axis=2)
    if not finite.all():
        count = int((~finite).sum())
        log.warning("%s: %d points with NaN/inf treated as missing", path, count)
        xyz[~finite] = 0.0
    if not np.any(xyz):
        raise DataError(path, "point cloud is empty (no valid point)")
    return xyz


def read_gt(path: str | Path) -> np.ndarray:
    """Read a ground-truth mask; any non-zero value (255 or a class id) is an anomaly."""
    path = Path(path)
    _require_file(path)
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise DataError(path, "cannot read mask (unreadable, truncated or not an image)")
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    return mask > 0


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "file not found")
