"""Training a CRD model: the same data split, preparation and calibration as MDSS
(:mod:`mdss_core.fit`), with CRD's networks and loop in between."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from mdss_core import __version__
from mdss_core.checkpoint import training_set_fingerprint
from mdss_core.config import MDSSConfig
from mdss_core.crd.net import CRDNet
from mdss_core.crd.train import train_crd
from mdss_core.devices import resolve_device
from mdss_core.fit import Fitted, calibrate_net, prepare_all, split_for_training
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
    train_refs, val_refs = split_for_training(dataset, config)
    torch.manual_seed(config.seed)
    net, origin = CRDNet.build(config)
    net = net.to(device)
    train = prepare_all(train_refs, config, "prepare", progress, cancel)
    val = prepare_all(val_refs, config, "prepare-val", progress, cancel)
    t_train = time.perf_counter()
    history = train_crd(net, train, progress, cancel)
    t_cal = time.perf_counter()
    calibration = calibrate_net(net, val, progress, cancel)  # type: ignore[arg-type]
    training = {
        "seconds": round(time.perf_counter() - started, 1),
        "seconds_crd": round(t_cal - t_train, 1),
        "device": device,
        "n_train": len(train),
        "n_validation": len(val),
        "training_set": training_set_fingerprint(train_refs, val_refs),
        "final_loss": round(history[-1], 5) if history else None,
        "dataset": str(getattr(dataset, "root", "")),
        "category": getattr(dataset, "category", ""),
        "mdss_version": __version__,
    }
    name = getattr(dataset, "category", "") or "model"
    return Fitted(net, calibration, origin, device, training, name)  # type: ignore[arg-type]
