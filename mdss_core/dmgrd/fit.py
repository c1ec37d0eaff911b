"""Training a DM-GRD + SDF model: MDSS's data split, preparation, SDF training and
calibration (:mod:`mdss_core.fit`) around DM-GRD's loop."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mdss_core.config import MDSSConfig
from mdss_core.devices import resolve_device
from mdss_core.dmgrd.net import DMGRDNet
from mdss_core.dmgrd.train import train_dmgrd
from mdss_core.fit import (
    Fitted,
    calibrate_net,
    model_name,
    prepared_split,
    training_record,
)
from mdss_core.geometry.train import train_sdf
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import SampleRef
from mdss_core.progress import CancelToken, ProgressCallback


def fit_dmgrd(
    dataset: DatasetIndex | Sequence[SampleRef],
    config: MDSSConfig,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Fitted:
    """Train on ``train``, calibrate on ``validation``; raises ``Cancelled``, writing nothing."""
    device = resolve_device(device)
    started = time.perf_counter()
    train_refs, val_refs, train, val = prepared_split(dataset, config, progress, cancel)
    torch.manual_seed(config.seed)
    net, origin = DMGRDNet.build(config)
    net = net.to(device)
    t_rgb = time.perf_counter()
    history = train_dmgrd(net, train, progress, cancel)
    t_sdf = time.perf_counter()
    net.sdf = train_sdf([p.points for p in train], config.sdf, device, progress, cancel)
    net = net.to(device).eval()
    t_cal = time.perf_counter()
    calibration = calibrate_net(net, val, progress, cancel)  # type: ignore[arg-type]
    seconds = {"seconds_rgb": t_sdf - t_rgb, "seconds_geometry": t_cal - t_sdf}
    last = history[-20:]
    training = training_record(
        dataset, train_refs, val_refs, device, started, seconds,
        final_loss=round(sum(last) / len(last), 5) if last else None,
    )  # fmt: skip
    return Fitted(net, calibration, origin, device, training, model_name(dataset))  # type: ignore[arg-type]
