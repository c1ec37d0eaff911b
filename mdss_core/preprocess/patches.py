"""Cutting a point cloud into overlapping local patches (paper 4.2, Shape-guided).

Centres come from farthest point sampling; each patch is a centre's ``k`` nearest neighbours.
With ``P = round(N · coverage / k)`` patches each point lies in about ``coverage`` patches;
extra patches are then added until every point lies in at least one. Every loop has a bound
that does not depend on the data being well formed: a cloud with heavily repeated positions
(a tiny capture enlarged to the model size) is still cut in bounded time.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def farthest_point_sampling(points: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Indices of ``count`` points chosen greedily, each farthest from those already chosen.

    The first point is drawn with ``seed``. One vectorised distance update per chosen point,
    so the cost is O(N · count).
    """
    pts = np.asarray(points, dtype=np.float32)
    n = len(pts)
    if n == 0:
        raise ValueError("cannot sample from an empty point set")
    count = min(int(count), n)
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = np.random.default_rng(seed).integers(n)
    # One contiguous array per coordinate: element-wise passes over these are ~20x faster than
    # reducing an (N, 3) array along its short axis.
    columns = np.ascontiguousarray(pts.T)
    nearest_sq = np.full(n, np.inf, dtype=np.float32)
    dist_sq = np.empty(n, dtype=np.float32)
    term = np.empty(n, dtype=np.float32)
    for i in range(1, count):
        centre = pts[chosen[i - 1]]
        np.subtract(columns[0], centre[0], out=dist_sq)
        np.square(dist_sq, out=dist_sq)
        for axis in (1, 2):
            np.subtract(columns[axis], centre[axis], out=term)
            np.square(term, out=term)
            dist_sq += term
        np.minimum(nearest_sq, dist_sq, out=nearest_sq)
        chosen[i] = int(np.argmax(nearest_sq))
    return chosen


def make_patches(
    points: np.ndarray,
    k: int = 500,
    coverage: float = 10.0,
    seed: int = 0,
) -> np.ndarray:
    """Patch index table (P, k) int64 into ``points`` (N, 3).

    ``P = max(1, round(N · coverage / k))`` farthest-point-sampled centres, each with its ``k``
    nearest neighbours (the centre itself included); then patches centred on still uncovered
    points are added until every point lies in at least one patch. When N < k there is a single
    patch holding every point once plus random repeats, so every patch has exactly ``k``
    indices. Deterministic for a given ``seed``.

    A cloud where more than ``k`` points sit at one exact position (a tiny capture enlarged to
    the model size, a sensor repeating a point) is cut on its distinct positions and each patch
    is repeated over the copies of its points (see :func:`_cover_copies`), so every point is
    still in a patch and the time stays bounded.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
    n = len(pts)
    if n == 0:
        raise ValueError("cannot cut patches from an empty point set")
    if k < 1:
        raise ValueError(f"patch size k must be at least 1, got {k}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points contain NaN or infinite coordinates")
    if n <= k:
        rng = np.random.default_rng(seed)
        extra = rng.integers(0, n, size=k - n)
        patch = np.concatenate([rng.permutation(n), extra]).astype(np.int64)
        return patch[None, :]
    patches = _cover(pts, k, coverage, seed)
    if patches is None:
        patches = _cover_copies(pts, k, coverage, seed)
    return patches


def _cover(pts: np.ndarray, k: int, coverage: float, seed: int) -> np.ndarray | None:
    """FPS centres + kNN, then extra patches until every point is covered.

    Returns ``None`` when some centre is not in its own patch: more than ``k`` points share its
    position, so kNN may return only other copies and covering could stall on that point.
    Otherwise every round covers at least its centres, all uncovered before, so at most N
    rounds run.
    """
    n = len(pts)
    tree = cKDTree(pts)
    count = max(1, round(n * coverage / k))
    centres = farthest_point_sampling(pts, count, seed=seed)
    first = _neighbours(tree, pts[centres], k)
    if not _holds_centres(first, centres):
        return None
    patches = [first]
    covered = np.zeros(n, dtype=bool)
    covered[first.ravel()] = True
    for round_seed in range(seed + 1, seed + 1 + n):  # bound: each round covers >= 1 new point
        if covered.all():
            return np.concatenate(patches, axis=0)
        # Cover the rest in batches: spread centres over the uncovered points (FPS among them),
        # enough that each batch could cover them all; each batch covers at least its centres.
        uncovered = np.flatnonzero(~covered)
        batch = max(1, -(-len(uncovered) // k))
        picked = uncovered[farthest_point_sampling(pts[uncovered], batch, seed=round_seed)]
        new = _neighbours(tree, pts[picked], k)
        if not _holds_centres(new, picked):
            return None
        patches.append(new)
        covered[new.ravel()] = True
    if not covered.all():  # unreachable (see the bound above); never loop on without progress
        raise RuntimeError("patch covering made no progress")
    return np.concatenate(patches, axis=0)


def _holds_centres(patches: np.ndarray, centres: np.ndarray) -> bool:
    return bool((patches == centres[:, None]).any(axis=1).all())


def _cover_copies(pts: np.ndarray, k: int, coverage: float, seed: int) -> np.ndarray:
    """Patches of a cloud with repeated positions: cut the distinct positions, then repeat.

    Each patch of the distinct positions is emitted as often as its most repeated position
    needs, its j-th use of a position taking the next copy of it in turn, so every copy lies in
    a patch. With m distinct positions, fewer than ``k``, the one patch gives each position
    slots in proportion to its copies, which makes about N / k patches in all.
    """
    # + 0.0 turns -0.0 into 0.0: kNN sees them as one position, so must the grouping.
    distinct, group, copies = np.unique(
        pts + np.float32(0.0), axis=0, return_inverse=True, return_counts=True
    )
    group = group.reshape(-1)
    m = len(distinct)
    if m <= k:
        table = _proportional_patch(copies, k, seed)
    else:
        table = _cover(distinct, k, coverage, seed)
        if table is None:  # unreachable: distinct positions never tie at distance 0
            raise RuntimeError("distinct points shared a position")
    flat = table.ravel()
    uses = np.bincount(flat, minlength=m)  # >= 1 each: the table covers every position
    # Rank of each table entry among the uses of its position (row-major order).
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], flat[order], side="left")
    rank = np.empty_like(flat)
    rank[order] = np.arange(len(flat)) - starts
    rank = rank.reshape(table.shape)
    # Copies of position g are members[offset[g] : offset[g] + copies[g]].
    members = np.argsort(group, kind="stable")
    offset = np.concatenate([[0], np.cumsum(copies)[:-1]])
    repeats = (-(-copies // uses))[table].max(axis=1)  # emissions each row needs
    rows = []
    for t in range(int(repeats.max())):  # bound: max copies of one position
        keep = np.flatnonzero(repeats > t)
        g = table[keep]
        turn = (t * uses[g] + rank[keep]) % copies[g]
        rows.append(members[offset[g] + turn])
    return np.concatenate(rows, axis=0).astype(np.int64)


def _proportional_patch(copies: np.ndarray, k: int, seed: int) -> np.ndarray:
    """One patch (1, k) over m <= k positions: each at least once, the rest by copy count."""
    m = len(copies)
    share = (k - m) * copies / copies.sum()
    slots = 1 + np.floor(share).astype(np.int64)
    left = k - int(slots.sum())
    slots[np.argsort(share - np.floor(share), kind="stable")[::-1][:left]] += 1
    patch = np.repeat(np.arange(m), slots)
    return np.random.default_rng(seed).permutation(patch)[None, :]


def _neighbours(tree: cKDTree, centres: np.ndarray, k: int) -> np.ndarray:
    """k nearest neighbour indices (P, k) for each centre, nearest first."""
    _, idx = tree.query(centres, k=k, workers=-1)
    return np.asarray(idx, dtype=np.int64).reshape(len(centres), k)
