"""Make a PDN teacher the EfficientAD way: regress a pretrained backbone's features.

A padded PDN learns to reproduce, on generic images, the channel-normalised features that a
*target* computes on the S/4 grid of the same image: by default the shipped ImageNet
MobileNetV2 (blocks 3/6/13 at twice the PDN size, exactly the features of the backbone teacher,
so the two teachers are comparable), or WideResNet-101-2 layers 2+3 from a user's file
(:mod:`mdss_core.rgb.distill_wrn`). The result is the same network without padding, whose
33-px receptive field a student can match on normal images.

Differences from EfficientAD's pretraining, and why: a few thousand corpus images instead of
ImageNet, so every step sees fresh augmented views (:mod:`mdss_core.rgb.distill_images`); a
cosine learning-rate decay after a short warm-up instead of a constant rate, because a CPU or
a borrowed GPU affords far fewer than EfficientAD's 60 000 steps.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.errors import DataError
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.distill_images import ImageBank, list_images
from mdss_core.rgb.pdn import PDN, init_pdn_

DEFAULT_DISTILL_STEPS = 60_000  # EfficientAD's pretraining length (GPU, batch 16)
STATS_VIEWS = 256  # augmented views used to estimate the target channel mean/std
HELDOUT_SHARE = 0.05  # of a flat image folder, when it has no heldout/ subfolder
REPORT_EVERY = 25  # steps between loss reports (each report waits for the GPU)
PROBE_STEPS = 100  # steps 25…100 are timed before a time budget fixes the step count
_STD_FLOOR = 1e-6


@dataclass(frozen=True)
class DistillSettings:
    """How long and how the PDN is trained (EfficientAD: batch 16, Adam 1e-4, wd 1e-5)."""

    size: str = "small"
    steps: int = DEFAULT_DISTILL_STEPS
    image_size: int = 256
    batch_size: int = 16
    lr: float = 1e-4
    weight_decay: float = 1e-5
    warmup_share: float = 0.01
    seed: int = 0
    # A time budget: after PROBE_STEPS timed steps, ``steps`` shrinks to what fits (0 = none).
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.image_size % 4:
            raise ValueError("image_size must be a multiple of 4 (the PDN's output stride)")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be at least 1")

    def lr_at(self, step: int, steps: int | None = None) -> float:
        """Linear warm-up, then cosine decay to 1 % of ``lr`` at ``steps`` (default: all)."""
        steps = steps or self.steps
        warmup = max(1, round(self.warmup_share * steps))
        if step < warmup:
            return self.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return self.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))


class NormalisedTarget(nn.Module):
    """A feature target with fixed per-channel mean/std (estimated once on corpus views)."""

    def __init__(self, target: nn.Module, channels: int) -> None:
        super().__init__()
        self.target = target.eval()
        self.register_buffer("mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("std", torch.ones(1, channels, 1, 1))

    @torch.no_grad()
    def fit(self, batches: list[torch.Tensor]) -> None:
        total = total_sq = None
        count = 0
        for x in batches:
            flat = self.target(x).float().transpose(0, 1).flatten(1).double()
            total = flat.sum(1) if total is None else total + flat.sum(1)
            total_sq = (flat**2).sum(1) if total_sq is None else total_sq + (flat**2).sum(1)
            count += flat.shape[1]
        if total is None or total_sq is None:
            raise ValueError("no images to estimate target statistics from")
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(0.0).sqrt().clamp_min(_STD_FLOOR)
        self.mean.copy_(mean.float().view_as(self.mean))
        self.std.copy_(std.float().view_as(self.std))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.target(x).float() - self.mean) / self.std


def split_corpus(image_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """(train, held-out) image files: ``train/`` + ``heldout/`` folders, or a fixed 5 % split."""
    image_dir = Path(image_dir)
    if (image_dir / "train").is_dir() and (image_dir / "heldout").is_dir():
        return list_images(image_dir / "train"), list_images(image_dir / "heldout")
    files = list_images(image_dir)
    held = set(np.random.default_rng(0).permutation(len(files))[: _held_count(len(files))])
    train = [f for i, f in enumerate(files) if i not in held]
    heldout = [f for i, f in enumerate(files) if i in held]
    if not train:
        raise DataError(image_dir, "too few images to distil a teacher (need at least 2)")
    return train, heldout


def _held_count(n: int) -> int:
    return 0 if n < 2 else max(1, round(HELDOUT_SHARE * n))


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16)


def distill_teacher(
    target: nn.Module,
    target_origin: dict[str, Any],
    image_dir: str | Path,
    settings: DistillSettings = DistillSettings(),
    device: str | torch.device = "cpu",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[PDN, dict[str, Any], NormalisedTarget]:
    """Train a padded PDN on ``image_dir`` to reproduce ``target``'s normalised features.

    ``target`` maps ImageNet-normalised N×3×S×S images to N×C×S/4×S/4 features and has an
    ``out_channels`` attribute. Returns the UNPADDED teacher (same weights), a JSON-ready origin
    (``kind="distilled"``, settings, corpus size, time, final and held-out losses) and the
    normalised target (its mean/std are needed to measure the teacher on other images).
    Progress: ``stage="distill"`` with metric ``loss``; ``Cancelled`` between steps.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick its kernels
    started = time.perf_counter()
    train_files, heldout_files = split_corpus(image_dir)
    bank = ImageBank.from_files(train_files, settings.image_size, device, progress, cancel)
    generator = torch.Generator().manual_seed(settings.seed)
    channels = int(target.out_channels)
    normalised = NormalisedTarget(target, channels).to(device)
    with _autocast(device):
        views = [
            bank.views(settings.batch_size, generator)
            for _ in range(math.ceil(STATS_VIEWS / settings.batch_size))
        ]
        normalised.fit(views)
    del views

    torch.manual_seed(settings.seed)
    student = PDN(settings.size, channels, padding=True)
    student = init_pdn_(student, settings.seed, "torch-default").to(device).train()
    optimizer = torch.optim.Adam(
        student.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    recent: list[torch.Tensor] = []
    loss_value = float("nan")
    steps = settings.steps
    probe_start = time.perf_counter()
    step = 0
    while step < steps:
        check_cancel(cancel, "teacher distillation")
        if step == REPORT_EVERY:
            probe_start = time.perf_counter()  # the first steps pay for kernel autotuning
        if settings.max_seconds and step == min(PROBE_STEPS, steps) and step > REPORT_EVERY:
            per_step = (time.perf_counter() - probe_start) / (step - REPORT_EVERY)
            steps = _steps_within(settings, step, per_step, started)
        for group in optimizer.param_groups:
            group["lr"] = settings.lr_at(step, steps)
        x = bank.views(settings.batch_size, generator)
        with _autocast(device):
            wanted = normalised(x)
            predicted = student(x)
        if predicted.shape != wanted.shape:
            raise ValueError(f"PDN grid {tuple(predicted.shape)} ≠ target {tuple(wanted.shape)}")
        loss = F.mse_loss(predicted.float(), wanted.float())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        recent.append(loss.detach())
        step += 1
        if step % REPORT_EVERY == 0 or step == steps:
            loss_value = float(torch.stack(recent).mean())  # one GPU sync per report
            recent.clear()
            report(progress, "distill", step, steps, loss=loss_value)

    student.eval()
    heldout = None
    if heldout_files:
        held_bank = ImageBank.from_files(heldout_files, settings.image_size, device)
        heldout = distillation_loss(student, normalised, held_bank)
    teacher = PDN(settings.size, channels)
    teacher.load_state_dict({k: v.detach().cpu() for k, v in student.state_dict().items()})
    origin = {
        "kind": "distilled",
        "size": settings.size,
        "out_channels": channels,
        "target": target_origin,
        "images": len(train_files),
        "heldout_images": len(heldout_files),
        **{k: v for k, v in asdict(settings).items() if k != "size"},
        "steps": steps,
        "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": loss_value,
        "heldout_loss": heldout,
    }
    return teacher.eval(), origin, normalised.cpu()


def _steps_within(settings: DistillSettings, done: int, per_step: float, started: float) -> int:
    """Total steps that fit the time budget at ``per_step`` seconds a step (one held-out pass
    and the file write come after; they take seconds)."""
    left = settings.max_seconds - (time.perf_counter() - started)
    return int(min(settings.steps, done + max(0.0, left) / max(per_step, 1e-9)))


@torch.no_grad()
def distillation_loss(
    pdn: PDN, normalised: NormalisedTarget, bank: ImageBank, batch_size: int = 8
) -> float:
    """Mean squared error of a PDN against the normalised target on whole bank images.

    ``pdn`` may be the padded training net or an unpadded teacher: an unpadded output is
    compared with the target cells it stands for (4 cells in from each side).
    """
    device = bank.device
    pdn = pdn.to(device).eval()
    normalised = normalised.to(device)
    total, count = 0.0, 0
    for start in range(0, len(bank), batch_size):
        index = torch.arange(start, min(start + batch_size, len(bank)))
        x = bank.whole(index)
        with _autocast(device):
            wanted = normalised(x).float()
            predicted = pdn(x).float()
        if predicted.shape[-1] < wanted.shape[-1]:
            border = (wanted.shape[-1] - predicted.shape[-1]) // 2
            wanted = wanted[..., border : border + predicted.shape[-2], border:][
                ..., : predicted.shape[-1]
            ]
        total += float(((predicted - wanted) ** 2).sum())
        count += predicted.numel()
    return total / max(count, 1)


def mobilenet_target(
    weights: str | Path | None = None, taps: tuple[int, ...] = (3, 6, 13), scale: float = 2.0
) -> tuple[nn.Module, dict[str, Any]]:
    """The backbone teacher's own features on the whole S/4 grid (a padded PDN's grid)."""
    from mdss_core.backbones.registry import load_backbone
    from mdss_core.rgb.backbone_teacher import BackboneTeacher

    net, origin = load_backbone(tuple(taps), weights)
    target = BackboneTeacher(net, scale, aligned=False)
    return target, {"kind": "mobilenet_v2", "scale": scale, **origin}


def wrn_target(
    path: str | Path, spec: Any = None, seed: int = 0
) -> tuple[nn.Module, dict[str, Any]]:
    """EfficientAD's target: a user's WideResNet (or ResNet) file, layers 2+3 → 384 channels."""
    from mdss_core.backbones.registry import file_sha256
    from mdss_core.rgb.distill_wrn import BackboneSpec, WRNTarget, load_backbone

    spec = spec or BackboneSpec()
    target = WRNTarget(load_backbone(path, spec), seed=seed)
    origin = {
        "kind": spec.name,
        "file": Path(path).name,
        "sha256": file_sha256(path),
        "blocks": list(spec.blocks),
        "width_per_group": spec.width_per_group,
        "projection": "gaussian-random",
        "projection_seed": seed,
    }
    return target, origin
