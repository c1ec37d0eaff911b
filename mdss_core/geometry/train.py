"""Neural-Pull training of the SDF network on normal point clouds (no distance labels).

A query q near the surface is pulled along the predicted gradient, q' = q - f(q) * grad/|grad|,
and the loss is the distance from q' to the nearest clean point of the patch. Queries are fresh
noisy copies of patch points drawn every step: the paper's fixed bank (20 copies of 500 points for
every patch) would take gigabytes for a real category, while one batched draw + nearest-neighbour
search costs a few milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mdss_core.checkpoint import (
    Checkpointer,
    StageState,
    load_module,
    module_tensors,
    optimizer_state,
    restore_optimizer,
)
from mdss_core.geometry.config import SDFConfig
from mdss_core.geometry.network import SDFNet, build_sdf_net, patch_frame
from mdss_core.preprocess.patches import make_patches
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

STAGE = "geometry"
_SIGMA_CHUNK = 64  # patches per batched distance matrix (64 x 500 x 500 floats = 64 MB)


@dataclass
class PatchSet:
    """Every training patch as indices into one concatenated point array."""

    points: torch.Tensor  # (M, 3) float32, all clouds
    index: torch.Tensor  # (P, k) int64 into points
    sigma: torch.Tensor  # (P, k) float32 query noise scale, in patch-normalised units

    def gather(self, ids: torch.Tensor) -> torch.Tensor:
        return self.points[self.index[ids]]


def build_patch_set(
    clouds: Sequence[np.ndarray],
    config: SDFConfig,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> PatchSet:
    """Cut every cloud into patches and precompute the per-point noise scale sigma."""
    if len(clouds) == 0:
        raise ValueError("train_sdf needs at least one training point cloud")
    points, indices, offset = [], [], 0
    for i, cloud in enumerate(clouds):
        check_cancel(cancel, "geometry training")
        cloud = np.asarray(cloud, dtype=np.float32)
        if cloud.ndim != 2 or cloud.shape[1] != 3:
            raise ValueError(f"training cloud {i} must be (N, 3), got {cloud.shape}")
        patches = make_patches(
            cloud, k=config.points_per_patch, coverage=config.coverage, seed=config.seed + i
        )
        points.append(cloud)
        indices.append(np.asarray(patches, dtype=np.int64) + offset)
        offset += len(cloud)
        report(progress, STAGE, i + 1, len(clouds), "cutting patches")
    all_points = torch.from_numpy(np.concatenate(points))
    index = torch.from_numpy(np.concatenate(indices))
    sigma = torch.empty(index.shape, dtype=torch.float32)
    for start in range(0, len(index), _SIGMA_CHUNK):
        chunk = all_points[index[start : start + _SIGMA_CHUNK]]
        sigma[start : start + _SIGMA_CHUNK] = neighbour_distance(
            patch_frame(chunk).apply(chunk), config.sigma_neighbor
        )
    return PatchSet(all_points, index, sigma)


def neighbour_distance(patches: torch.Tensor, n: int) -> torch.Tensor:
    """(B, k, 3) -> (B, k): distance of every point to its n-th nearest *other* patch point."""
    dist = torch.cdist(patches, patches)
    return dist.kthvalue(n + 1, dim=2).values  # +1 skips the point itself (distance 0)


def sample_queries(
    patches: torch.Tensor,
    sigma: torch.Tensor,
    count: int,
    config: SDFConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy copies of random patch points and, for each, its nearest clean patch point.

    ``patches`` (B, k, 3) and ``sigma`` (B, k) are in patch-normalised units. The noise level of
    each query is drawn with the paper's proportions (13 copies at 0.5 sigma, 7 at 1.0 sigma).
    """
    b, k, _ = patches.shape
    device = patches.device
    src = torch.randint(k, (b, count), generator=generator, device=device)
    base = patches.gather(1, src.unsqueeze(-1).expand(-1, -1, 3))
    weights = torch.tensor(config.noise_copies, dtype=torch.float32, device=device)
    level = torch.multinomial(weights, b * count, replacement=True, generator=generator)
    scales = torch.tensor(config.noise_scales, dtype=patches.dtype, device=device)[level]
    std = sigma.gather(1, src) * scales.view(b, count)
    noise = torch.randn(b, count, 3, generator=generator, device=device, dtype=patches.dtype)
    queries = base + std.unsqueeze(-1) * noise
    nearest = torch.cdist(queries, patches).argmin(dim=2)
    targets = patches.gather(1, nearest.unsqueeze(-1).expand(-1, -1, 3))
    return queries, targets


def neural_pull_loss(
    net: SDFNet, patches: torch.Tensor, queries: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Mean distance between pulled queries q - f(q) grad f / |grad f| and their targets."""
    queries = queries.detach().requires_grad_(True)
    sdf = net.decode(net.encode(patches), queries)
    (grad,) = torch.autograd.grad(sdf.sum(), queries, create_graph=True)
    sdf, grad = sdf.float(), grad.float()
    # The small constant keeps the direction finite where the gradient vanishes.
    direction = grad / torch.sqrt((grad * grad).sum(dim=-1, keepdim=True) + 1e-12)
    pulled = queries - sdf.unsqueeze(-1) * direction
    return (pulled - targets).norm(dim=-1).mean()


def train_sdf(
    clouds: Sequence[np.ndarray],
    config: SDFConfig,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> SDFNet:
    """Train a fresh :class:`SDFNet` on patches of normal clouds (each (N_i, 3) float32).

    Reports ``Progress(stage="geometry", step, steps, metrics={"loss": ...})`` after every step and
    raises :class:`~mdss_core.errors.Cancelled` between steps. Deterministic on CPU for a seed.
    With a ``checkpoint``, the loop state is saved every ``checkpoint.every`` steps and on
    cancel, and a run that the checkpoint stopped inside continues at its step.
    Returns the network in eval mode.
    """
    device = torch.device(device)
    data = build_patch_set(clouds, config, progress, cancel)
    points, index, sigma = data.points.to(device), data.index.to(device), data.sigma.to(device)
    net = build_sdf_net(config).to(device)
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.steps, eta_min=config.lr_min
    )
    generator = torch.Generator(device=device).manual_seed(config.seed)
    use_amp = config.amp and device.type == "cuda"
    start = 0
    resumed = checkpoint.resumed(STAGE) if checkpoint is not None else None
    if resumed is not None:
        start = _restore_loop(resumed, net, optimiser, schedule, generator)
    for step in range(start, config.steps):
        if checkpoint is not None and cancel is not None and cancel.is_set():
            checkpoint.save(STAGE, _loop_state(step, net, optimiser, schedule, generator))
        check_cancel(cancel, "geometry training")
        ids = torch.randint(len(index), (config.batch_size,), generator=generator, device=device)
        patches = points[index[ids]]
        frame = patch_frame(patches)
        patches = frame.apply(patches)
        queries, targets = sample_queries(
            patches, sigma[ids], config.queries_per_patch, config, generator
        )
        # bfloat16 needs no loss scaling, which would be awkward with the inner gradient.
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = neural_pull_loss(net, patches, queries, targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"SDF training diverged at step {step + 1} (loss {value})")
        report(progress, STAGE, step + 1, config.steps, "training SDF", loss=value)
        if checkpoint is not None and checkpoint.due(step + 1, config.steps):
            checkpoint.save(STAGE, _loop_state(step + 1, net, optimiser, schedule, generator))
    net.eval()
    return net


def _loop_state(
    done: int,
    net: SDFNet,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> StageState:
    """Everything the loop needs to continue after ``done`` steps (see :mod:`checkpoint`)."""
    tensors, optim_meta = optimizer_state(optimiser)
    tensors.update(module_tensors("net", net))
    tensors["generator"] = generator.get_state()
    meta = {"optimizer": optim_meta, "schedule": schedule.state_dict()}
    return StageState(done, tensors, meta)


def _restore_loop(
    state: StageState,
    net: SDFNet,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> int:
    """Inverse of :func:`_loop_state`; returns the number of steps done."""
    load_module("net", net, state.tensors)
    restore_optimizer(optimiser, state.tensors, state.meta["optimizer"])
    schedule.load_state_dict(state.meta["schedule"])
    generator.set_state(state.tensors["generator"])
    return state.step
