"""The normal image's map from a memory of normal cells instead of from the student.

A student that sees the surface-normal image learns to reproduce the teacher's features of it
so well that it also reproduces many dents and cuts (3D I-AUROC 0.80–0.83 on the cable_gland
dev set). The teacher's features of the normal image separate defective scans better when
each test cell is compared with the nearest cell of the training scans (0.96 with the
student's own targets; method_facts §9, docs/experiments.md). This module keeps that memory
small: the foreground cells of the training scans' normal images, thinned by greedy coreset
selection (each pick the cell farthest from those already picked, in a random 128-d
projection), so that rare but normal shapes stay represented and the file and the search stay
bounded.

One coreset is one random draw, and on the dev set the draw alone moved the normal map's
I-AUROC between 0.855 and 0.961 (six draws, one trained model). The memory may therefore hold
several independent draws ("draws", stacked row blocks of equal size); a cell's value is its
nearest-row distance in each draw, averaged over the draws (docs/experiments.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.maps import mask_to_grid
from mdss_core.rgb.pdn import normalize_images


class NormalImageTeacher(Protocol):
    """What the memory needs of an RGB branch (:class:`~mdss_core.rgb.branch.RGBBranch`,
    which imports this module: named by shape, not imported)."""

    @property
    def device(self) -> torch.device: ...

    def normal_image_targets(self, normals: torch.Tensor) -> torch.Tensor: ...


# Memory rows compared at once: bounds the distance matrix (cells × rows) per image batch.
MEMORY_CHUNK = 4096
_PROJECTION_DIM = 128
PICKS_PER_REPORT = 128


def nearest_memory_map(
    features: torch.Tensor, memory: torch.Tensor, draws: int = 1
) -> torch.Tensor:
    """Squared distance of each cell to its nearest memory row, averaged over channels (and,
    with ``draws`` > 1, over the memory's equal row blocks: each block one coreset draw).

    ``features`` N×C×h×w, ``memory`` M×C (both normalised like the student's targets) →
    N×1×h×w: the same scale as the student's map (channel mean of a squared difference).
    The memory is walked in fixed chunks, so the work per cell is bounded and an exported
    graph keeps its dynamic batch axis.
    """
    n, c, h, w = features.shape
    cells = features.permute(0, 2, 3, 1).reshape(-1, c).float()
    cell_norms = (cells * cells).sum(dim=1, keepdim=True)
    per_draw = memory.shape[0] // draws
    total = cells.new_zeros(cells.shape[0])
    for draw in range(draws):
        block = memory[draw * per_draw : (draw + 1) * per_draw]
        best = None
        for start in range(0, per_draw, MEMORY_CHUNK):
            rows = block[start : start + MEMORY_CHUNK].float()
            dist = cell_norms - 2.0 * cells @ rows.T + (rows * rows).sum(dim=1)[None, :]
            low = dist.min(dim=1).values
            best = low if best is None else torch.minimum(best, low)
        assert best is not None, "an empty memory has no map"
        total = total + best.clamp_min(0.0)
    return (total / (draws * c)).reshape(n, 1, h, w)


def greedy_coreset(
    cells: torch.Tensor,
    count: int,
    seed: int = 0,
    on_picks: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Indices of ``count`` rows of ``cells`` (K×C), each the farthest from those before it.

    Distances are taken in a random projection (PatchCore's approximation): the picks cost
    ``count`` passes over K×128 numbers instead of K×C. ``on_picks(n)`` is called every
    :data:`PICKS_PER_REPORT` picks (progress; it may raise ``Cancelled``).
    """
    if count >= len(cells):
        return torch.arange(len(cells))
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(cells.shape[1], _PROJECTION_DIM, generator=generator)
    points = cells.float() @ (projection / _PROJECTION_DIM**0.5)
    picks = torch.empty(count, dtype=torch.long)
    norms = (points * points).sum(dim=1)
    picks[0] = int(torch.randint(len(cells), (1,), generator=generator))
    nearest = torch.full((len(cells),), float("inf"))
    for i in range(count):
        if i:
            picks[i] = torch.argmax(nearest)
        if on_picks is not None and i % PICKS_PER_REPORT == 0:
            on_picks(i)
        pick = points[picks[i]]
        # |p - q|² as a matrix-vector product: no K×128 temporary per pick
        nearest = torch.minimum(nearest, norms - 2.0 * (points @ pick) + norms[picks[i]])
    return picks


def build_normals_memory(
    branch: NormalImageTeacher,
    normals: np.ndarray,
    masks: np.ndarray | None,
    count: int,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    batch_size: int = 8,
    draws: int = 1,
) -> torch.Tensor:
    """``draws`` × ``count`` rows (float32, on the CPU) of the branch's normalised teacher
    features of the training normal images ``normals`` (uint8 N×S×S×3), from their foreground
    cells (``masks`` bool N×S×S, the cells the student was taught on; ``None`` = every cell):
    ``draws`` coresets of ``count`` rows, stacked, drawn with seeds ``seed·draws + i`` (other
    training seeds, other draws).

    Reports ``stage="rgb-memory"`` (steps: images, then picks of every draw); raises
    ``Cancelled`` between batches and picks.
    """
    device = branch.device
    kept: list[torch.Tensor] = []
    for start in range(0, len(normals), batch_size):
        check_cancel(cancel, "building the normal-image memory")
        x = normalize_images(normals[start : start + batch_size]).to(device)
        with torch.inference_mode():
            target = branch.normal_image_targets(x)
        cells = target.permute(0, 2, 3, 1).reshape(-1, target.shape[1])
        if masks is not None:
            part = torch.from_numpy(masks[start : start + batch_size]).to(device)[:, None]
            grid = mask_to_grid(part, tuple(target.shape[-2:]))
            keep = grid.permute(0, 2, 3, 1).reshape(-1) > 0
            if bool(keep.any()):
                cells = cells[keep]
        kept.append(cells.cpu())
        done = min(start + batch_size, len(normals))
        report(progress, "rgb-memory", done, len(normals) + count * draws)

    everything = torch.cat(kept)
    blocks = []
    for draw in range(draws):

        def on_picks(picked: int, before: int = len(normals) + draw * count) -> None:
            check_cancel(cancel, "building the normal-image memory")
            report(progress, "rgb-memory", before + picked, len(normals) + count * draws)

        picks = greedy_coreset(everything, count, seed * draws + draw, on_picks)
        blocks.append(everything[picks])
    report(progress, "rgb-memory", len(normals) + count * draws, len(normals) + count * draws)
    return torch.cat(blocks).contiguous()
