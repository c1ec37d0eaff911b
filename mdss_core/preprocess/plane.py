"""Background plane removal for organized point clouds (BTF's recipe, paper 4.2).

A plane is fitted robustly (RANSAC, then least squares on the inliers) to the points of the
image border strips, where the sensor sees the table and not the object, and every point close
to that plane is set to (0, 0, 0), the "missing point" value of organized clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Below this many valid border points the border is not trusted and all valid points are used.
_MIN_BORDER_POINTS = 100
# RANSAC scores hypotheses on a random subsample: enough points for a stable inlier count,
# few enough that (hypotheses × points) distances stay a few MB.
_RANSAC_SAMPLE = 3000
_HYPOTHESES_PER_CHUNK = 250
_REFINE_ROUNDS = 3


@dataclass(frozen=True)
class Plane:
    """Plane ``normal · p + offset = 0`` with a unit normal oriented towards the camera.

    ``offset > 0`` means the camera (origin) lies on the positive side, so a positive signed
    distance is "in front of the plane" (where objects sit). ``inlier_fraction`` is the share
    of fitting points within the RANSAC inlier threshold of the final plane.
    """

    normal: tuple[float, float, float]
    offset: float
    inlier_fraction: float

    def signed_distance(self, points: np.ndarray) -> np.ndarray:
        """Signed distance of ``points`` (..., 3) to the plane, in the points' unit."""
        normal = np.asarray(self.normal, dtype=np.float64)
        return np.asarray(points, dtype=np.float64) @ normal + self.offset


def valid_points_mask(xyz: np.ndarray) -> np.ndarray:
    """True where an organized cloud holds a point: finite and not (0, 0, 0)."""
    return np.all(np.isfinite(xyz), axis=-1) & np.any(xyz != 0, axis=-1)


def border_mask(shape: tuple[int, int], border: int) -> np.ndarray:
    """True on the ``border``-pixel-wide strips along the four image edges."""
    mask = np.zeros(shape, dtype=bool)
    if border > 0:
        mask[:border, :] = True
        mask[-border:, :] = True
        mask[:, :border] = True
        mask[:, -border:] = True
    return mask


def _plane_from_triples(triples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit normals, offsets and a validity flag for planes through point triples (H, 3, 3)."""
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    # Collinear (or repeated) points give no plane; compare against the triple's own scale.
    scale = np.linalg.norm(triples[:, 1] - triples[:, 0], axis=1) ** 2 + 1e-30
    ok = lengths > 1e-9 * scale
    normals = normals / np.where(ok, lengths, 1.0)[:, None]
    offsets = -np.einsum("hj,hj->h", normals, triples[:, 0])
    return normals, offsets, ok


def _least_squares_plane(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Total-least-squares plane: normal = direction of least variance around the centroid."""
    centroid = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - centroid, full_matrices=False)
    normal = vt[-1]
    return normal, float(-normal @ centroid)


def fit_plane_ransac(
    points: np.ndarray,
    inlier_threshold: float = 0.004,
    iterations: int = 1000,
    seed: int = 0,
) -> Plane:
    """Robust plane through ``points`` (N, 3), N ≥ 3.

    All ``iterations`` three-point hypotheses are scored at once (vectorised, in chunks) on a
    random subsample; the winner is refined by least squares on its inliers among all points.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) < 3:
        raise ValueError(f"need at least 3 points of shape (N, 3) to fit a plane, got {pts.shape}")
    rng = np.random.default_rng(seed)
    sample = pts[rng.choice(len(pts), size=min(len(pts), _RANSAC_SAMPLE), replace=False)]

    picks = rng.integers(0, len(sample), size=(max(1, iterations), 3))
    normals, offsets, ok = _plane_from_triples(sample[picks])
    counts = np.full(len(normals), -1, dtype=np.int64)
    for start in range(0, len(normals), _HYPOTHESES_PER_CHUNK):
        stop = start + _HYPOTHESES_PER_CHUNK
        dist = np.abs(sample @ normals[start:stop].T + offsets[start:stop])
        counts[start:stop] = np.where(ok[start:stop], (dist < inlier_threshold).sum(axis=0), -1)
    best = int(np.argmax(counts))
    if counts[best] < 0:
        # Every hypothesis was degenerate (e.g. all points on a line): least squares still works.
        normal, offset = _least_squares_plane(pts)
    else:
        normal, offset = normals[best], float(offsets[best])

    inliers = np.abs(pts @ normal + offset) < inlier_threshold
    for _ in range(_REFINE_ROUNDS):
        if inliers.sum() < 3:
            break
        normal, offset = _least_squares_plane(pts[inliers])
        refined = np.abs(pts @ normal + offset) < inlier_threshold
        if np.array_equal(refined, inliers):
            break
        inliers = refined

    if offset < 0:  # orient the normal towards the camera at the origin
        normal, offset = -normal, -offset
    return Plane(
        normal=(float(normal[0]), float(normal[1]), float(normal[2])),
        offset=float(offset),
        inlier_fraction=float(inliers.mean()),
    )


def remove_background_plane(
    xyz: np.ndarray,
    distance: float = 0.005,
    border: int = 10,
    inlier_threshold: float = 0.004,
    iterations: int = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, Plane]:
    """Fit the background plane on the border strips and erase every point near it.

    ``xyz`` is an organized cloud (H, W, 3) in metres with (0, 0, 0) for missing points. Returns
    a new float32 array in which points with ``|distance to plane| < distance`` (and non-finite
    points) are (0, 0, 0), and the fitted :class:`Plane`. The input is never modified. When the
    border holds fewer than 100 valid points, the plane is fitted on all valid points instead.
    """
    cloud = np.asarray(xyz)
    if cloud.ndim != 3 or cloud.shape[2] != 3:
        raise ValueError(f"organized cloud must have shape (H, W, 3), got {cloud.shape}")
    valid = valid_points_mask(cloud)
    if not valid.any():
        raise ValueError("point cloud has no valid points: cannot fit a background plane")

    fit_mask = valid & border_mask(valid.shape, border)
    if fit_mask.sum() < _MIN_BORDER_POINTS:
        fit_mask = valid
    if fit_mask.sum() < 3:
        raise ValueError(f"point cloud has only {int(fit_mask.sum())} valid points: no plane")
    plane = fit_plane_ransac(cloud[fit_mask], inlier_threshold, iterations, seed)

    cleaned = np.where(valid[..., None], cloud, 0).astype(np.float32, copy=True)
    near = np.zeros_like(valid)
    near[valid] = np.abs(plane.signed_distance(cloud[valid])) < distance
    cleaned[near] = 0.0
    return cleaned, plane
