"""Training a model: prepare the samples, train each branch, calibrate fusion and thresholds.

The branches' training loops are :func:`mdss_core.rgb.train.train_student` and
:func:`mdss_core.geometry.train.train_sdf`; calibration scores the validation samples through
:meth:`MDSSNet.branch_maps` like any prediction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mdss_core import __version__
from mdss_core.checkpoint import Checkpointer, fingerprint, training_set_fingerprint
from mdss_core.config import DEFAULT_PRESET, MDSSConfig, get_preset
from mdss_core.devices import resolve_device
from mdss_core.errors import Cancelled, DataError
from mdss_core.fusion import Calibration, calibrate
from mdss_core.geometry.network import SDFNet, build_sdf_net
from mdss_core.geometry.train import train_sdf
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import SampleRef
from mdss_core.net import MDSSNet, normal_images
from mdss_core.preprocess.pipeline import PreparedSample, prepare
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.memory import build_normals_memory
from mdss_core.rgb.teacher_choice import resolve_teacher
from mdss_core.rgb.train import train_student


@dataclass
class Fitted:
    """What training produces; :class:`mdss_core.model.MDSSModel` wraps it."""

    net: MDSSNet
    calibration: Calibration
    teacher_origin: dict[str, Any]
    device: str
    training: dict[str, Any] = field(default_factory=dict)
    name: str = "model"


def fit(
    dataset: DatasetIndex | Sequence[SampleRef],
    config: MDSSConfig | str = DEFAULT_PRESET,
    *,
    teacher: str | Path | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> Fitted:
    """Train on the ``train`` split; calibrate fusion and thresholds on ``validation``.

    Without a validation split, ``config.holdout_fraction`` of the training samples (at least
    one) is held out for calibration. Raises ``Cancelled`` when the token is set; the model is
    not written here, so a cancelled run leaves the user's model untouched. With a
    ``checkpoint`` the training state is saved every few steps and on cancel (beside the
    model), and a resuming checkpoint continues its run (refused for other data or settings).
    """
    if isinstance(config, str):
        config = get_preset(config)
    device = resolve_device(device)
    started = time.perf_counter()
    train_refs, val_refs = split_for_training(dataset, config)
    torch.manual_seed(config.seed)

    teacher_net, origin, rgb_config = resolve_teacher(teacher, config.rgb, config.seed)
    config = replace(config, rgb=rgb_config)
    totals = {"rgb": config.rgb.steps, "geometry": config.sdf.steps}
    resumed_at = begin_checkpoint(checkpoint, config, origin, train_refs, val_refs, totals)
    train = prepare_all(train_refs, config, "prepare", progress, cancel)
    val = prepare_all(val_refs, config, "prepare-val", progress, cancel)

    t_rgb = time.perf_counter()
    with finished_stages_kept(checkpoint):
        rgb = _train_rgb(teacher_net, train, config, device, progress, cancel, checkpoint)
        t_sdf = time.perf_counter()
        sdf = train_geometry_stage(train, config, device, progress, cancel, checkpoint)
        t_cal = time.perf_counter()
        net = MDSSNet(rgb, sdf, config).to(device).eval()
        calibration = calibrate_net(net, val, progress, cancel)
    seconds = {"seconds_rgb": t_sdf - t_rgb, "seconds_geometry": t_cal - t_sdf}
    training = training_record(dataset, train_refs, val_refs, device, started, seconds)
    if resumed_at:
        training["resumed_at_step"] = resumed_at
    return Fitted(net, calibration, origin, device, training, model_name(dataset))


def begin_checkpoint(
    checkpoint: Checkpointer | None,
    config: MDSSConfig,
    teacher_origin: dict[str, Any],
    train_refs: Sequence[SampleRef],
    val_refs: Sequence[SampleRef],
    totals: dict[str, int],
) -> int:
    """Start a training's checkpoint (before the samples are prepared: a checkpoint of other
    data or settings is refused at once); the steps a resumed one had done, else 0."""
    if checkpoint is None:
        return 0
    key = fingerprint(config.to_dict(), teacher_origin, train_refs, val_refs)
    info = checkpoint.begin(key, totals, config.method)
    return 0 if info is None else info.done


@contextmanager
def finished_stages_kept(checkpoint: Checkpointer | None) -> Iterator[None]:
    """On cancel, save the stages that finished since the checkpoint was last written."""
    try:
        yield
    except Cancelled:
        if checkpoint is not None:
            checkpoint.save_boundary()
        raise


def training_record(
    dataset: DatasetIndex | Sequence[SampleRef],
    train_refs: Sequence[SampleRef],
    val_refs: Sequence[SampleRef],
    device: str,
    started: float,
    seconds: dict[str, float],
    **extra: Any,
) -> dict[str, Any]:
    """What the model file records about its training (every detector the same way):
    ``started`` is the ``perf_counter`` at the start, ``seconds`` each stage's duration."""
    return {
        "seconds": round(time.perf_counter() - started, 1),
        **{name: round(value, 1) for name, value in seconds.items()},
        "device": device,
        "n_train": len(train_refs),
        "n_validation": len(val_refs),
        "training_set": training_set_fingerprint(train_refs, val_refs),
        "dataset": str(getattr(dataset, "root", "")),
        "category": getattr(dataset, "category", ""),
        "mdss_version": __version__,
        **extra,
    }


def model_name(dataset: DatasetIndex | Sequence[SampleRef]) -> str:
    return getattr(dataset, "category", "") or "model"


def _train_rgb(
    teacher_net: torch.nn.Module,
    train: Sequence[PreparedSample],
    config: MDSSConfig,
    device: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    checkpoint: Checkpointer | None,
) -> RGBBranch:
    """The student, trained here or restored from a checkpoint whose RGB stage had finished,
    with its normal-cell memory (built here when the checkpoint stopped before it was kept)."""
    saved = checkpoint.finished.get("rgb") if checkpoint is not None else None
    wants_memory = config.rgb.normals and config.rgb.normals_memory > 0
    masks = np.stack([p.foreground_mask for p in train])
    normals = None  # computed once, for the student and its memory alike
    if saved is not None:
        source = str(checkpoint.path)  # type: ignore[union-attr]
        has_memory = "memory" in saved and saved["memory"].shape[0] > 0
        kept = config.rgb if has_memory else replace(config.rgb, normals_memory=0)
        rgb = RGBBranch.from_state_dict(saved, kept, source).to(device).eval()
    else:
        images = np.stack([p.rgb for p in train])
        normals = normal_images(train) if config.rgb.normals else None
        rgb = train_student(
            teacher_net, images, masks, config.rgb, device, progress, cancel, normals, checkpoint
        )
        if checkpoint is not None:  # a cancel while the memory is built keeps the student
            checkpoint.stage_done("rgb", rgb.state_dict())
    if wants_memory and rgb.memory.shape[0] == 0:
        normals = normal_images(train) if normals is None else normals
        rgb.memory = build_normals_memory(
            rgb, normals, masks if config.rgb.mask_on else None, config.rgb.normals_memory,
            config.rgb.seed, progress, cancel, draws=config.rgb.normals_memory_draws,
        ).to(rgb.device)  # fmt: skip
        rgb.memory_draws = config.rgb.normals_memory_draws
        if checkpoint is not None:
            checkpoint.stage_done("rgb", rgb.state_dict())
    return rgb


def train_geometry_stage(
    train: Sequence[PreparedSample],
    config: MDSSConfig,
    device: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    checkpoint: Checkpointer | None,
) -> SDFNet:
    """The SDF network, trained here or restored from a checkpoint whose 3D stage had finished."""
    saved = checkpoint.finished.get("geometry") if checkpoint is not None else None
    if saved is not None:
        net = build_sdf_net(config.sdf)
        net.load_state_dict(saved)
        return net.to(device).eval()
    sdf = train_sdf([p.points for p in train], config.sdf, device, progress, cancel, checkpoint)
    if checkpoint is not None:
        checkpoint.stage_done("geometry", sdf.state_dict())
    return sdf


def calibrate_net(
    net: MDSSNet,
    val: Sequence[PreparedSample],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Calibration:
    """Alignment statistics and default thresholds from normal validation samples."""
    report(progress, "calibrate", 0, len(val))
    all_maps = []
    for i, prepared in enumerate(val):
        check_cancel(cancel, "calibration")
        all_maps.extend(net.branch_maps([prepared]))
        report(progress, "calibrate", i + 1, len(val))
    normal_maps = [m.normals for m in all_maps]
    return calibrate(
        [m.rgb for m in all_maps],
        [m.sdf for m in all_maps],
        [p.foreground_mask for p in val],
        normal_maps if all(n is not None for n in normal_maps) else None,  # type: ignore[arg-type]
        rule=net.config.fusion,
        quantile=net.config.threshold_quantile,
        top_k=net.config.image_top_k,
    )


def split_for_training(
    dataset: DatasetIndex | Sequence[SampleRef], config: MDSSConfig
) -> tuple[list[SampleRef], list[SampleRef]]:
    refs = list(dataset)
    train = [r for r in refs if r.split == "train"] or [r for r in refs if r.split == ""]
    val = [r for r in refs if r.split == "validation"]
    root = getattr(dataset, "root", "dataset")
    if not train:
        raise DataError(root, "no training samples (expected a train/good folder)")
    if any(r.label == 1 for r in train):
        raise DataError(root, "training samples must be defect-free (train holds anomalies)")
    if not val:
        if len(train) < 2:
            raise DataError(root, "need at least 2 normal samples (1 to train, 1 to calibrate)")
        count = max(1, round(len(train) * config.holdout_fraction))
        rng = np.random.default_rng(config.seed)
        held = set(rng.choice(len(train), count, replace=False).tolist())
        val = [r for i, r in enumerate(train) if i in held]
        train = [r for i, r in enumerate(train) if i not in held]
    return train, val


def prepare_all(
    refs: Sequence[SampleRef],
    config: MDSSConfig,
    stage: str,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> list[PreparedSample]:
    prepared = []
    for i, ref in enumerate(refs):
        check_cancel(cancel, "data preparation")
        prepared.append(prepare(ref.load(), config.preprocess))
        report(progress, stage, i + 1, len(refs), ref.key)
    return prepared
