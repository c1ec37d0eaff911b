"""Student training with MDSS's masked dynamic loss (paper 3.1); the result is an RGBBranch."""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mdss_core.checkpoint import (
    Checkpointer,
    StageState,
    load_module,
    module_tensors,
    optimizer_state,
    restore_optimizer,
)
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.branch import RGBBranch, image_batches, student_input
from mdss_core.rgb.config import RGBConfig
from mdss_core.rgb.maps import mask_to_grid
from mdss_core.rgb.pdn import PDN, init_pdn_, normalize_images, pdn_output_size

# torch.quantile refuses inputs above 2^24 elements; kthvalue has no such limit, but the
# subsample keeps the selection cost bounded for large batches (4×384×56×56 ≈ 4.8 M fits).
QUANTILE_MAX_ELEMENTS = 1 << 24
# Teacher outputs are cached for the whole training set when they fit in this many bytes
# (no augmentation, so each image's teacher output never changes); saves a teacher forward
# per step, about a quarter of the step time.
TEACHER_CACHE_BYTES = 1 << 30
_STD_FLOOR = 1e-6  # a constant teacher channel must not divide by zero


def dynamic_loss(diff: torch.Tensor, mask: torch.Tensor | None, d: float) -> torch.Tensor:
    """MDSS dynamic loss (Eq. 1): mean of the masked squared differences ≥ their d-quantile.

    ``diff`` is D (N×C×h×w), ``mask`` M (N×1×h×w, 0/1; ``None`` = everything is foreground).
    The quantile is taken over the FOREGROUND elements of D⊙M only, not over all of D⊙M as the
    equation literally reads. With the literal reading the background zeros shift the quantile
    by the object's area: a part covering 30 % of the grid at d = 0.99 would average its top
    3.3 % of errors, a part under 1 % of the grid would average all of them (or, with "≥",
    dilute the mean with zeros). Over the foreground, d means the same thing for every object
    and image: "the worst (1 − d) share of the object's errors" — EfficientAD's hard loss
    restricted to the object. Background elements are never selected.

    The quantile is the "higher" order statistic (``kthvalue``; ``torch.quantile`` sorts and is
    ~10× slower here); elements ≥ it are averaged, so at least one element is always selected.
    Inputs above 2^24 foreground elements are subsampled with a fixed stride for the quantile.
    """
    values = diff.reshape(-1) if mask is None else diff[(mask > 0).expand_as(diff)]
    if values.numel() == 0:
        return diff.sum() * 0.0  # no foreground: a zero loss that still backpropagates
    threshold = _higher_quantile(values.detach().float(), d)
    return values[values >= threshold].mean()


def _higher_quantile(values: torch.Tensor, d: float) -> torch.Tensor:
    if values.numel() > QUANTILE_MAX_ELEMENTS:
        stride = math.ceil(values.numel() / QUANTILE_MAX_ELEMENTS)
        values = values[::stride]  # deterministic subsample, no RNG involved
    rank = math.ceil(d * (values.numel() - 1)) + 1  # 1-based rank of the "higher" quantile
    return torch.kthvalue(values, rank).values


def cosine_d(step: int, total: int, d_start: float, d_end: float) -> float:
    """Dynamic factor at ``step`` (0-based) of ``total``: cosine from d_start to d_end."""
    if total <= 1:
        return d_end
    progress = min(max(step / (total - 1), 0.0), 1.0)
    return d_end + (d_start - d_end) * 0.5 * (1.0 + math.cos(math.pi * progress))


@torch.no_grad()
def compute_teacher_stats(
    teacher: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (C each) of the teacher outputs over all images and positions."""
    mean, std, _ = _teacher_pass(teacher, images, batch_size, torch.device(device), keep=False)
    return mean, std


def _teacher_pass(
    teacher: nn.Module,
    images: np.ndarray | torch.Tensor,
    batch_size: int,
    device: torch.device,
    keep: bool,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
    """One pass over the images: channel statistics, and optionally the raw outputs.

    Reports ``stage="rgb-stats"`` per image batch (a few minutes for hundreds of 256² images on
    a CPU) and honours ``cancel`` between batches.
    """
    total = None
    total_sq = None
    count = 0
    kept: list[torch.Tensor] | None = [] if keep else None
    teacher.eval()
    for part in image_batches(images, batch_size):
        check_cancel(cancel, "teacher statistics")
        out = teacher(normalize_images(images[part]).to(device)).float()
        # float64 sums: millions of values per channel would lose precision in float32.
        flat = out.transpose(0, 1).reshape(out.shape[1], -1).double()
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = (flat**2).sum(1) if total_sq is None else total_sq + (flat**2).sum(1)
        count += flat.shape[1]
        if kept is not None:
            kept.append(out)
        report(progress, "rgb-stats", part.stop, len(images), "teacher statistics")
    if total is None or total_sq is None:
        raise ValueError("no images to compute teacher statistics from")
    mean = total / count
    var = (total_sq / count - mean**2).clamp_min(0.0)
    std = var.sqrt().clamp_min(_STD_FLOOR)
    return mean.float(), std.float(), kept


def _check_training_arrays(images: np.ndarray, masks: np.ndarray | None) -> None:
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 N×S×S×3, got {images.dtype} {images.shape}")
    if len(images) == 0:
        raise ValueError("no training images")
    if masks is not None and masks.shape != images.shape[:3]:
        raise ValueError(f"masks must be N×S×S matching images, got {masks.shape}")


def _autocast_dtype(device: torch.device, amp: bool) -> torch.dtype | None:
    if not amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def train_student(
    teacher: nn.Module,
    images: np.ndarray,
    masks: np.ndarray | None,
    config: RGBConfig,
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    normals: np.ndarray | None = None,
    checkpoint: Checkpointer | None = None,
) -> RGBBranch:
    """Train a student to imitate the normalised teacher on normal images (Table 1 settings).

    ``images`` uint8 N×S×S×3, ``masks`` bool N×S×S foreground (used when ``config.mask_on``;
    an all-background mask counts as all foreground so such an image still teaches something).
    ``normals`` (uint8 N×S×S×3 surface-normal images, see ``preprocess.normals``): the student
    then sees both images (6 channels) and reproduces the teacher's features of each, which
    gives a second, geometric map.
    Reports ``stage="rgb-stats"`` during the teacher pass, then ``stage="rgb"`` once per step
    with metrics ``loss`` and ``d``; raises ``Cancelled`` between batches and steps.
    Deterministic on CPU for a given seed. The teacher passed in is not modified.
    With a ``checkpoint``, the loop state is saved every ``checkpoint.every`` steps and on
    cancel, and a run that the checkpoint stopped inside continues at its step.
    """
    _check_training_arrays(images, masks)
    if normals is not None and normals.shape != images.shape:
        raise ValueError(f"normal images must match the colour images, got {normals.shape}")
    device = torch.device(device)
    size = images.shape[1]
    check_cancel(cancel, "RGB training")

    teacher = copy.deepcopy(teacher).to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    grid = pdn_output_size(size, config.pdn_size)
    kinds = [images] if normals is None else [images, normals]
    cache_bytes = len(kinds) * len(images) * teacher.out_channels * grid * grid * 4
    passes = []
    with torch.no_grad():
        for kind in kinds:
            passes.append(
                _teacher_pass(
                    teacher,
                    kind,
                    config.batch_size,
                    device,
                    keep=cache_bytes <= TEACHER_CACHE_BYTES,
                    progress=progress,
                    cancel=cancel,
                )
            )
    mean = torch.cat([p[0] for p in passes]).to(device)
    std = torch.cat([p[1] for p in passes]).to(device)
    channels = teacher.out_channels * len(kinds)
    student = PDN(config.pdn_size, channels, in_channels=3 * len(kinds))
    student = init_pdn_(student, config.seed, "torch-default")
    branch = RGBBranch(teacher, student, mean, std).to(device)
    branch.student.train()
    cached = None
    if all(p[2] is not None for p in passes):
        cached = torch.cat([torch.cat(p[2]) for p in passes], dim=1)
        passes.clear()
        cached.sub_(branch.mean).div_(branch.std)
    cell_masks = _cell_masks(masks if config.mask_on else None, grid, device)

    optimizer = torch.optim.Adam(
        branch.student.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    amp_dtype = _autocast_dtype(device, config.amp)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    rng = np.random.default_rng(config.seed)
    order = np.empty(0, dtype=np.int64)
    start = 0
    resumed = checkpoint.resumed("rgb") if checkpoint is not None else None
    if resumed is not None:
        start, order = _restore_loop(resumed, branch.student, optimizer, scaler, rng)

    def state(done: int) -> StageState:
        return _loop_state(done, branch.student, optimizer, scaler, rng, order)

    for step in range(start, config.steps):
        if checkpoint is not None and cancel is not None and cancel.is_set():
            checkpoint.save("rgb", state(step))
        check_cancel(cancel, "RGB training")
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(step)
        while len(order) < config.batch_size:  # a fresh permutation per epoch
            order = np.concatenate([order, rng.permutation(len(images))])
        index = np.sort(order[: config.batch_size])
        order = order[config.batch_size :]
        rows = torch.from_numpy(index).to(device)
        d = cosine_d(step, config.steps, config.d_start, config.d_end)
        crop = _crop_window(config.crop, size, config.pdn_size, grid, rng, index)
        x = student_input(
            _crop_pixels(images[index], crop),
            None if normals is None else _crop_pixels(normals[index], crop),
        ).to(device)
        autocast = (
            torch.autocast(device.type, dtype=amp_dtype)
            if amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            if cached is not None:
                target = _crop_cells(cached[rows], crop)
            else:
                with torch.no_grad():
                    target = branch.normalized_teacher(x)
            prediction = branch.student(x)
        diff = (target.float() - prediction.float()) ** 2
        mask = None if cell_masks is None else _crop_cells(cell_masks[rows], crop)
        loss = dynamic_loss(diff, mask, d)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        report(progress, "rgb", step + 1, config.steps, loss=float(loss.detach()), d=d)
        if checkpoint is not None and checkpoint.due(step + 1, config.steps):
            checkpoint.save("rgb", state(step + 1))
    return branch.eval()


def _loop_state(
    done: int,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rng: np.random.Generator,
    order: np.ndarray,
) -> StageState:
    """Everything the loop needs to continue after ``done`` steps (see :mod:`checkpoint`)."""
    tensors, optim_meta = optimizer_state(optimizer)
    tensors.update(module_tensors("student", student))
    tensors["order"] = torch.from_numpy(np.asarray(order, dtype=np.int64).copy())
    meta = {"optimizer": optim_meta, "rng": rng.bit_generator.state, "scaler": scaler.state_dict()}
    return StageState(done, tensors, meta)


def _restore_loop(
    state: StageState,
    student: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    rng: np.random.Generator,
) -> tuple[int, np.ndarray]:
    """Inverse of :func:`_loop_state`; returns (steps done, the epoch's remaining order)."""
    load_module("student", student, state.tensors)
    restore_optimizer(optimizer, state.tensors, state.meta["optimizer"])
    if state.meta.get("scaler"):
        scaler.load_state_dict(state.meta["scaler"])
    rng.bit_generator.state = state.meta["rng"]
    return state.step, state.tensors["order"].numpy().astype(np.int64)


@dataclass(frozen=True)
class _Crop:
    """Per-image crop origins in feature cells; pixel origin = 4 × cell (PDN stride)."""

    rows: np.ndarray
    cols: np.ndarray
    pixels: int
    cells: int


def _crop_window(
    crop: int,
    size: int,
    pdn_size: str,
    grid: int,
    rng: np.random.Generator,
    index: np.ndarray,
) -> _Crop | None:
    """Random crop origins, or ``None`` for whole images.

    Why crops are exact: the unpadded PDN is translation-equivariant with stride 4 (both
    pools see even shifts), so the output of a crop starting at pixel 4a equals cells a… of the
    whole image's output — the cached teacher targets can simply be sliced. Without a cache
    (too many images to keep their outputs) the teacher runs on the crop itself, which gives
    the same targets at a quarter of a whole image's cost.
    """
    if crop <= 0 or crop >= size:
        return None
    cells = pdn_output_size(crop, pdn_size)
    limit = min(grid - cells, (size - crop) // 4)
    rows = rng.integers(0, limit + 1, len(index))
    cols = rng.integers(0, limit + 1, len(index))
    return _Crop(rows, cols, crop, cells)


def _crop_pixels(images: np.ndarray, crop: _Crop | None) -> np.ndarray:
    if crop is None:
        return images
    p = crop.pixels
    origins = zip(images, 4 * crop.rows, 4 * crop.cols, strict=True)
    return np.stack([im[r : r + p, c : c + p] for im, r, c in origins])


def _crop_cells(cells: torch.Tensor, crop: _Crop | None) -> torch.Tensor:
    if crop is None:
        return cells
    n = crop.cells
    origins = zip(cells, crop.rows, crop.cols, strict=True)
    return torch.stack([t[:, r : r + n, c : c + n] for t, r, c in origins])


def _cell_masks(masks: np.ndarray | None, grid: int, device: torch.device) -> torch.Tensor | None:
    if masks is None:
        return None
    pixel = torch.from_numpy(np.ascontiguousarray(masks)).to(torch.float32).unsqueeze(1)
    cells = mask_to_grid(pixel, (grid, grid))
    empty = cells.flatten(1).amax(1) == 0
    cells[empty] = 1.0  # an image with no foreground trains on everything rather than nothing
    return cells.to(device)
