"""Per-point |sdf| anomaly scores and their 2D score map (paper 3.2, inference)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from mdss_core import fast_paths
from mdss_core.devices import patches_per_pass
from mdss_core.geometry.network import SDFNet, patch_frame
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report


def point_scores(
    net: SDFNet,
    points: np.ndarray,
    patches: np.ndarray,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """|f| of every point (N,) float32, evaluated inside each patch (P, k) that contains it.

    A point covered by several patches keeps the minimum (Shape-guided): one patch that explains
    the point well is enough to call it normal. Points in no patch score 0. The values are in
    patch-normalised units (patch extent = 1), as the network sees them.

    ``batch_size`` patches go through the network at once (default:
    :func:`mdss_core.devices.patches_per_pass`).

    Float32 on every device, CUDA included (no autocast): the scores are small distances that
    half precision visibly changes (``docs/experiments.md``, GPU), and the branch is a fifth of
    a prediction's FLOPs.
    """
    points = np.asarray(points, dtype=np.float32)
    patches = np.asarray(patches)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {points.shape}")
    if patches.ndim != 2 or patches.size == 0:
        raise ValueError(f"patches must be a non-empty (P, k) index array, got {patches.shape}")
    if patches.min() < 0 or patches.max() >= len(points):
        raise ValueError("patch indices fall outside the point array")
    device = torch.device(device)
    if batch_size is None:
        batch_size = patches_per_pass(device.type)
    pts = torch.from_numpy(points).to(device)
    index = torch.from_numpy(patches.astype(np.int64)).to(device)
    best = torch.full((len(points),), torch.inf, device=device)
    was_training = net.training
    net.eval()  # running statistics, never batch statistics: a sample's scores must not vary
    try:
        with torch.inference_mode():
            decode = _inference_decoder(net, device, batch_size * patches.shape[1])
            # Gather, normalise and scatter all patches at once: per-batch small ops cost more
            # in dispatch than in arithmetic (the gathered cloud is P·k·12 bytes, a few MB).
            local = pts[index]
            local = patch_frame(local).apply(local)
            sdf = torch.empty(index.shape, device=device)
            for start in range(0, len(index), batch_size):
                check_cancel(cancel, "geometry scoring")
                chunk = local[start : start + batch_size]
                sdf[start : start + batch_size] = decode(net.encode(chunk), chunk)
                report(progress, "geometry", min(start + batch_size, len(index)), len(index))
            best.scatter_reduce_(0, index.reshape(-1), sdf.abs_().reshape(-1), reduce="amin")
    finally:
        net.train(was_training)
    best[torch.isinf(best)] = 0.0
    return best.cpu().numpy().astype(np.float32)


def _inference_decoder(net: SDFNet, device: torch.device, rows: int) -> fast_paths.Decode:
    """The decoder's CPU fast path when it has one (:mod:`mdss_core.fast_paths`), else its own."""
    if device.type == "cpu" and isinstance(net, SDFNet):
        return fast_paths.decoder_forward(net.decoder, rows) or net.decode
    return net.decode


def scores_to_map(
    scores: np.ndarray, pixel_index: np.ndarray, size: int, sigma: float = 4.0
) -> np.ndarray:
    """Scatter point scores into a (size, size) grid (empty pixels 0) and Gaussian-blur it.

    The blur is done in float32 (Shape-guided went through an 8-bit image, which quantises).
    ``sigma <= 0`` returns the unblurred grid.
    """
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    pixel_index = np.asarray(pixel_index).reshape(-1)
    if len(scores) != len(pixel_index):
        raise ValueError(f"{len(scores)} scores but {len(pixel_index)} pixel indices")
    if len(pixel_index) and (pixel_index.min() < 0 or pixel_index.max() >= size * size):
        raise ValueError(f"pixel indices fall outside the {size}x{size} grid")
    grid = np.zeros(size * size, dtype=np.float32)
    # maximum.at keeps the result defined should two points share a pixel.
    np.maximum.at(grid, pixel_index.astype(np.int64), scores)
    return blur_score_grid(grid.reshape(size, size), sigma)


def blur_score_grid(grid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a scattered score grid in float32; ``sigma <= 0`` returns it as is."""
    if sigma <= 0:
        return grid
    return cv2.GaussianBlur(grid, (0, 0), sigmaX=sigma, sigmaY=sigma)
