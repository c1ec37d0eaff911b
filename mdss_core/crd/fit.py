"""Training a CRD model: the same data split, preparation, checkpoints and calibration as
MDSS (:mod:`mdss_core.fit`), with CRD's networks and loop in between."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mdss_core.checkpoint import Checkpointer
from mdss_core.config import MDSSConfig
from mdss_core.crd.net import CRDNet
from mdss_core.crd.train import STAGE, branch_tensors, load_branches, steps_per_epoch, train_crd
from mdss_core.devices import resolve_device
from mdss_core.fit import (
    Fitted,
    begin_checkpoint,
    calibrate_net,
    finished_stages_kept,
    model_name,
    prepare_all,
    split_for_training,
    training_record,
)
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import SampleRef
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.progress import CancelToken, ProgressCallback


def fit_crd(
    dataset: DatasetIndex | Sequence[SampleRef],
    config: MDSSConfig,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> Fitted:
    """Train on ``train``, calibrate on ``validation`` (or a held-out part of train); raises
    ``Cancelled`` when the token is set, writing no model (a ``checkpoint`` keeps the loop's
    state, and a resuming one continues it, as MDSS training does)."""
    device = resolve_device(device)
    started = time.perf_counter()
    train_refs, val_refs = split_for_training(dataset, config)
    torch.manual_seed(config.seed)
    net, origin = CRDNet.build(config)
    net = net.to(device)
    totals = {STAGE: config.crd.epochs * steps_per_epoch(config.crd, len(train_refs))}
    resumed_at = begin_checkpoint(checkpoint, config, origin, train_refs, val_refs, totals)
    train = prepare_all(train_refs, config, "prepare", progress, cancel)
    val = prepare_all(val_refs, config, "prepare-val", progress, cancel)
    t_train = time.perf_counter()
    with finished_stages_kept(checkpoint):
        history = _train_or_restore(net, train, progress, cancel, checkpoint)
        t_cal = time.perf_counter()
        calibration = calibrate_net(net, val, progress, cancel)  # type: ignore[arg-type]
    training = training_record(
        dataset, train_refs, val_refs, device, started, {"seconds_crd": t_cal - t_train},
        final_loss=round(history[-1], 5) if history else None,
    )  # fmt: skip
    if resumed_at:
        training["resumed_at_step"] = resumed_at
    return Fitted(net, calibration, origin, device, training, model_name(dataset))  # type: ignore[arg-type]


def _train_or_restore(
    net: CRDNet,
    train: Sequence[PreparedSample],
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    checkpoint: Checkpointer | None,
) -> list[float]:
    """Both branches trained here, or restored from a checkpoint whose training had finished
    (cancelled during calibration); the loss per epoch."""
    saved = checkpoint.finished.get(STAGE) if checkpoint is not None else None
    if saved is not None:
        load_branches(net, saved)
        net.eval()
        return saved["history"].tolist()
    history = train_crd(net, train, progress, cancel, checkpoint)
    if checkpoint is not None:
        losses = torch.tensor(history, dtype=torch.float64)
        checkpoint.stage_done(STAGE, {**branch_tensors(net), "history": losses})
    return history
