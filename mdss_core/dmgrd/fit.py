"""Training a DM-GRD + SDF model: MDSS's data split, preparation, SDF training, checkpoints
and calibration (:mod:`mdss_core.fit`) around DM-GRD's loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mdss_core.checkpoint import Checkpointer, load_module, module_tensors
from mdss_core.config import MDSSConfig
from mdss_core.devices import resolve_device
from mdss_core.dmgrd.net import DMGRDNet
from mdss_core.dmgrd.train import STAGE, train_dmgrd
from mdss_core.fit import (
    Fitted,
    begin_checkpoint,
    calibrate_net,
    finished_stages_kept,
    model_name,
    prepare_all,
    split_for_training,
    train_geometry_stage,
    training_record,
)
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import SampleRef
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.progress import CancelToken, ProgressCallback


def fit_dmgrd(
    dataset: DatasetIndex | Sequence[SampleRef],
    config: MDSSConfig,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> Fitted:
    """Train on ``train``, calibrate on ``validation``; raises ``Cancelled``, writing no
    model (a ``checkpoint`` keeps each stage's state, and a resuming one continues it)."""
    device = resolve_device(device)
    started = time.perf_counter()
    train_refs, val_refs = split_for_training(dataset, config)
    torch.manual_seed(config.seed)
    net, origin = DMGRDNet.build(config)
    net = net.to(device)
    totals = {STAGE: config.dmgrd.steps, "geometry": config.sdf.steps}
    resumed_at = begin_checkpoint(checkpoint, config, origin, train_refs, val_refs, totals)
    train = prepare_all(train_refs, config, "prepare", progress, cancel)
    val = prepare_all(val_refs, config, "prepare-val", progress, cancel)
    t_rgb = time.perf_counter()
    with finished_stages_kept(checkpoint):
        history = _train_or_restore(net, train, progress, cancel, checkpoint)
        t_sdf = time.perf_counter()
        net.sdf = train_geometry_stage(train, config, device, progress, cancel, checkpoint)
        net = net.to(device).eval()
        t_cal = time.perf_counter()
        calibration = calibrate_net(net, val, progress, cancel)  # type: ignore[arg-type]
    seconds = {"seconds_rgb": t_sdf - t_rgb, "seconds_geometry": t_cal - t_sdf}
    last = history[-20:]
    training = training_record(
        dataset, train_refs, val_refs, device, started, seconds,
        final_loss=round(sum(last) / len(last), 5) if last else None,
    )  # fmt: skip
    if resumed_at:
        training["resumed_at_step"] = resumed_at
    return Fitted(net, calibration, origin, device, training, model_name(dataset))  # type: ignore[arg-type]


def _train_or_restore(
    net: DMGRDNet,
    train: Sequence[PreparedSample],
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    checkpoint: Checkpointer | None,
) -> list[float]:
    """The student (memory banks included) trained here, or restored from a checkpoint whose
    DM-GRD stage had finished; the loss per step."""
    saved = checkpoint.finished.get(STAGE) if checkpoint is not None else None
    if saved is not None:
        load_module("student", net.student, saved)
        return saved["history"].tolist()
    history = train_dmgrd(net, train, progress, cancel, checkpoint)
    if checkpoint is not None:
        losses = torch.tensor(history, dtype=torch.float64)
        checkpoint.stage_done(STAGE, {**module_tensors("student", net.student), "history": losses})
    return history
