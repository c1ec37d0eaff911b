"""Training a CRD model: the same data split, preparation and calibration as MDSS
(:mod:`mdss_core.fit`), with CRD's networks and loop in between."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mdss_core.config import MDSSConfig
from mdss_core.crd.net import CRDNet
from mdss_core.crd.train import train_crd
from mdss_core.devices import resolve_device
from mdss_core.fit import (
    Fitted,
    calibrate_net,
    model_name,
    prepared_split,
    training_record,
)
from mdss_core.io.layout import DatasetIndex
from mdss_core.io.sample import SampleRef
from mdss_core.progress import CancelToken, ProgressCallback


def fit_crd(
    dataset: DatasetIndex | Sequence[SampleRef],
    config: MDSSConfig,
    *,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Fitted:
    """Train on ``train``, calibrate on ``validation`` (or a held-out part of train); raises
    ``Cancelled`` when the token is set, writing nothing."""
    device = resolve_device(device)
    started = time.perf_counter()
    train_refs, val_refs, train, val = prepared_split(dataset, config, progress, cancel)
    torch.manual_seed(config.seed)
    net, origin = CRDNet.build(config)
    net = net.to(device)
    t_train = time.perf_counter()
    history = train_crd(net, train, progress, cancel)
    t_cal = time.perf_counter()
    calibration = calibrate_net(net, val, progress, cancel)  # type: ignore[arg-type]
    training = training_record(
        dataset, train_refs, val_refs, device, started, {"seconds_crd": t_cal - t_train},
        final_loss=round(history[-1], 5) if history else None,
    )  # fmt: skip
    return Fitted(net, calibration, origin, device, training, model_name(dataset))  # type: ignore[arg-type]
