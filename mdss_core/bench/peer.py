"""A memory-bank peer (PatchCore-style) on the same inputs, for the scaling comparison.

RGB: every foreground cell's normalised PDN-teacher feature (384-d) of every training image is
kept; a test cell scores its Euclidean distance to the nearest bank feature (exact search,
``torch.cdist`` in chunks). 3D: every training point's local normal + curvature (PCA of its
k nearest neighbours) is kept; a test point scores its distance to the nearest bank feature
(k-d tree). The bank grows with the training set; that growth is what the benchmark shows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from mdss_core.geometry.infer import scores_to_map
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.maps import mask_to_grid, upsample_map
from mdss_core.rgb.pdn import normalize_images

NORMAL_NEIGHBOURS = 16  # points per local PCA: enough for a stable normal on a 0.24 mm grid
QUERY_CHUNK = 1024  # query cells per cdist call: bounds the distance matrix at chunk × bank
BANK_CHUNK = 65536  # bank rows per cdist call


def point_features(points: np.ndarray, k: int = NORMAL_NEIGHBOURS) -> np.ndarray:
    """(N, 3) points → (N, 4) float32: unit normal facing the camera, and surface variation.

    Surface variation = smallest PCA eigenvalue / eigenvalue sum of the k-neighbourhood
    (0 on a plane, up to 1/3 on isotropic noise), scaled by 3 to span [0, 1] like the normal.
    """
    pts = np.asarray(points, dtype=np.float32)
    k = max(3, min(k, len(pts)))
    _, idx = cKDTree(pts).query(pts, k=k, workers=-1)
    neigh = pts[np.asarray(idx).reshape(len(pts), k)]
    centred = neigh - neigh.mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", centred, centred) / k
    values, vectors = np.linalg.eigh(cov)  # ascending eigenvalues
    normal = vectors[:, :, 0]
    # The camera looks along +z from the origin: flip normals so they face it (n · p < 0).
    flip = np.einsum("ni,ni->n", normal, pts) > 0
    normal[flip] *= -1.0
    variation = 3.0 * values[:, 0] / np.maximum(values.sum(axis=1), 1e-20)
    return np.concatenate([normal, variation[:, None]], axis=1).astype(np.float32)


def nearest_distance(queries: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """Distance of every query row to its nearest bank row (exact, chunked cdist)."""
    best = torch.full((len(queries),), torch.inf, device=queries.device)
    for q in range(0, len(queries), QUERY_CHUNK):
        part = queries[q : q + QUERY_CHUNK]
        for b in range(0, len(bank), BANK_CHUNK):
            d = torch.cdist(part, bank[b : b + BANK_CHUNK]).amin(dim=1)
            best[q : q + QUERY_CHUNK] = torch.minimum(best[q : q + QUERY_CHUNK], d)
    return best


def _network_input(images: np.ndarray, device: str) -> torch.Tensor:
    """The same normalisation and layout as MDSS's own inference, for a like-for-like timing."""
    return normalize_images(images, channels_last=True).to(device)


class MemoryBankPeer:
    """Stores training features; scores by nearest-neighbour distance. No learned weights."""

    def __init__(self, branch: RGBBranch, device: str = "cpu") -> None:
        # Same teacher and channel normalisation as MDSS's RGB branch: only the scoring differs.
        self.branch = branch.to(device).eval()
        self.device = device
        self.rgb_bank = torch.empty(0, branch.teacher.out_channels, device=device)
        self.point_bank = np.empty((0, 4), dtype=np.float32)
        self.point_tree: cKDTree | None = None

    def _cell_features(self, prepared: Sequence[PreparedSample]) -> list[torch.Tensor]:
        images = np.stack([p.rgb for p in prepared])
        masks = np.stack([p.foreground_mask for p in prepared])
        with torch.inference_mode():
            feats = self.branch.normalized_teacher(_network_input(images, self.device))
            pixel = torch.from_numpy(masks).float().unsqueeze(1).to(self.device)
            cells = mask_to_grid(pixel, tuple(feats.shape[-2:]))[:, 0] > 0
            flat = feats.permute(0, 2, 3, 1)  # N×h×w×C
            return [flat[i][cells[i]] for i in range(len(prepared))]

    def fit(self, prepared: Sequence[PreparedSample], batch_size: int = 8) -> MemoryBankPeer:
        rows: list[torch.Tensor] = []
        for start in range(0, len(prepared), batch_size):
            rows += self._cell_features(prepared[start : start + batch_size])
        self.rgb_bank = torch.cat(rows).contiguous()
        self.point_bank = np.concatenate([point_features(p.points) for p in prepared])
        self.point_tree = cKDTree(self.point_bank)
        return self

    @property
    def bank_bytes(self) -> int:
        """Feature banks plus the k-d tree's index array (its other nodes are small)."""
        rgb = self.rgb_bank.numel() * self.rgb_bank.element_size()
        tree = len(self.point_bank) * np.dtype(np.intp).itemsize
        return int(rgb + self.point_bank.nbytes + tree)

    def predict_maps(self, prepared: PreparedSample) -> tuple[np.ndarray, np.ndarray]:
        """RGB and 3D anomaly maps at model size (S×S float32)."""
        if self.point_tree is None:
            raise RuntimeError("fit the peer before predicting")
        images = prepared.rgb[None]
        with torch.inference_mode():
            feats = self.branch.normalized_teacher(_network_input(images, self.device))
            h, w = feats.shape[-2:]
            pixel = torch.from_numpy(prepared.foreground_mask[None, None]).float()
            cells = (mask_to_grid(pixel.to(self.device), (h, w))[0, 0] > 0).reshape(-1)
            queries = feats[0].permute(1, 2, 0).reshape(-1, feats.shape[1])[cells]
            grid = torch.zeros(h * w, device=self.device)
            grid[cells] = nearest_distance(queries, self.rgb_bank)
            size = prepared.rgb.shape[:2]
            rgb_map = upsample_map(grid.reshape(1, 1, h, w), size)[0, 0].cpu().numpy()
        dist, _ = self.point_tree.query(point_features(prepared.points), k=1, workers=-1)
        sdf_map = scores_to_map(dist.astype(np.float32), prepared.pixel_index, prepared.size, 4.0)
        return rgb_map.astype(np.float32), sdf_map

    def predict(self, prepared: PreparedSample) -> np.ndarray:
        """Fused map: each branch scaled by its maximum, then the pixel-wise maximum."""
        rgb_map, sdf_map = self.predict_maps(prepared)
        rgb_map /= max(float(rgb_map.max()), 1e-12)
        sdf_map /= max(float(sdf_map.max()), 1e-12)
        return np.maximum(rgb_map, sdf_map)
