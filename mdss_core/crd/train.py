"""CRD's training loop: both branches, each with its own Adam, on cached teacher features.

The teacher is frozen and RD trains without augmentation, so each training image's teacher
features are computed once and reused every epoch (on 2 CPU cores this is most of the saving
that makes the ``cpu`` preset fit in minutes). Per branch the loss is RD's cosine loss of every
student output: plain, filtered, amplified and blended (``network.CRDBranch.outputs``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mdss_core.crd.inputs import images_3d, images_rgb
from mdss_core.crd.net import CRDNet
from mdss_core.crd.network import CRDBranch, rd_loss
from mdss_core.devices import images_per_pass
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

STAGE = "crd"


def cached_features(
    net: CRDNet,
    images: np.ndarray,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    what: str,
) -> list[torch.Tensor]:
    """The teacher's three feature maps of every image, stacked (on the model's device)."""
    per_pass = images_per_pass(net.device, len(images))
    parts: list[list[torch.Tensor]] = []
    for start in range(0, len(images), per_pass):
        check_cancel(cancel, "teacher features")
        parts.append(net.teacher_features(images[start : start + per_pass]))
        done = min(start + per_pass, len(images))
        report(progress, "teacher-features", done, len(images), what)
    return [torch.cat([p[k] for p in parts]) for k in range(3)]


def branch_loss(
    branch: CRDBranch, own: Sequence[torch.Tensor], other: Sequence[torch.Tensor]
) -> torch.Tensor:
    return torch.stack([rd_loss(own, out) for out in branch.outputs(own, other).values()]).sum()


def train_crd(
    net: CRDNet,
    train: Sequence[PreparedSample],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[float]:
    """Train both branches in place for ``crd.epochs``; returns the mean loss per epoch."""
    config = net.config.crd
    t_rgb = cached_features(net, images_rgb(train), progress, cancel, "colour images")
    t_geo = cached_features(net, images_3d(train, config.input_3d), progress, cancel, "3D images")
    optimisers = [
        torch.optim.Adam(b.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
        for b in (net.rgb_branch, net.geo_branch)
    ]
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train)
    batch = min(config.batch_size, n)
    per_epoch = max(1, n // batch)  # full batches only: batch norm needs more than one image
    total = config.epochs * per_epoch
    net.train()
    history = []
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        losses = []
        for i in range(per_epoch):
            check_cancel(cancel, "CRD training")
            pick = order[i * batch : (i + 1) * batch].to(net.device)
            rgb = [f[pick] for f in t_rgb]
            geo = [f[pick] for f in t_geo]
            step_losses = []
            for branch, own, other, opt in (
                (net.rgb_branch, rgb, geo, optimisers[0]),
                (net.geo_branch, geo, rgb, optimisers[1]),
            ):
                opt.zero_grad(set_to_none=True)
                loss = branch_loss(branch, own, other)
                loss.backward()
                opt.step()
                step_losses.append(float(loss.detach()))
            losses.append(sum(step_losses))
            step = epoch * per_epoch + i + 1
            report(
                progress, STAGE, step, total, f"epoch {epoch + 1}",
                loss=step_losses[0], loss_3d=step_losses[1],
            )  # fmt: skip
        history.append(float(np.mean(losses)))
    net.eval()
    return history
