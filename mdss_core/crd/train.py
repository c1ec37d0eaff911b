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

from mdss_core.checkpoint import (
    Checkpointer,
    StageState,
    load_module,
    module_tensors,
    optimizer_state,
    restore_optimizer,
)
from mdss_core.crd.config import CRDConfig
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


def steps_per_epoch(config: CRDConfig, n_train: int) -> int:
    """Full batches of the training images only: batch norm needs more than one image."""
    return max(1, n_train // min(config.batch_size, n_train))


def branch_tensors(net: CRDNet) -> dict[str, torch.Tensor]:
    """Both trained branches' tensors, as a checkpoint keeps them (see :func:`load_branches`)."""
    return {**module_tensors("rgb", net.rgb_branch), **module_tensors("geo", net.geo_branch)}


def load_branches(net: CRDNet, tensors: dict[str, torch.Tensor]) -> None:
    load_module("rgb", net.rgb_branch, tensors)
    load_module("geo", net.geo_branch, tensors)


def train_crd(
    net: CRDNet,
    train: Sequence[PreparedSample],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> list[float]:
    """Train both branches in place for ``crd.epochs``; returns the mean loss per epoch.

    With a ``checkpoint`` the loop state is saved every ``checkpoint.every`` steps and on
    cancel, and a run the checkpoint stopped inside continues at its step (the teacher's
    features are computed again: they are a function of the images)."""
    config = net.config.crd
    t_rgb = cached_features(net, images_rgb(train), progress, cancel, "colour images")
    t_geo = cached_features(net, images_3d(train, config.input_3d), progress, cancel, "3D images")
    optimisers = [
        torch.optim.Adam(b.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
        for b in (net.rgb_branch, net.geo_branch)
    ]
    loop = _Loop(net, optimisers, torch.Generator().manual_seed(config.seed))
    n = len(train)
    batch = min(config.batch_size, n)
    per_epoch = steps_per_epoch(config, n)
    total = config.epochs * per_epoch
    resumed = checkpoint.resumed(STAGE) if checkpoint is not None else None
    start = 0 if resumed is None else loop.restore(resumed)
    net.train()
    for step in range(start, total):
        if checkpoint is not None and cancel is not None and cancel.is_set():
            checkpoint.save(STAGE, loop.state(step))
        check_cancel(cancel, "CRD training")
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            loop.order = torch.randperm(n, generator=loop.generator)
        pick = loop.order[i * batch : (i + 1) * batch].to(net.device)
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
        loop.epoch_losses.append(sum(step_losses))
        if i == per_epoch - 1:
            loop.history.append(float(np.mean(loop.epoch_losses)))
            loop.epoch_losses = []
        report(
            progress, STAGE, step + 1, total, f"epoch {epoch + 1}",
            loss=step_losses[0], loss_3d=step_losses[1],
        )  # fmt: skip
        if checkpoint is not None and checkpoint.due(step + 1, total):
            checkpoint.save(STAGE, loop.state(step + 1))
    net.eval()
    return loop.history


class _Loop:
    """What CRD's loop carries from step to step, and its checkpoint form."""

    def __init__(
        self, net: CRDNet, optimisers: list[torch.optim.Optimizer], generator: torch.Generator
    ) -> None:
        self.net, self.optimisers, self.generator = net, optimisers, generator
        self.order = torch.zeros(0, dtype=torch.long)  # this epoch's sample order
        self.history: list[float] = []  # mean loss of each finished epoch
        self.epoch_losses: list[float] = []  # this epoch's losses so far

    def state(self, done: int) -> StageState:
        tensors = {
            **branch_tensors(self.net),
            "generator": self.generator.get_state(),
            "order": self.order,
        }
        meta: dict = {"history": self.history, "epoch_losses": self.epoch_losses}
        for name, opt in zip(_OPTIMISERS, self.optimisers, strict=True):
            opt_tensors, meta[name] = optimizer_state(opt, name)
            tensors.update(opt_tensors)
        return StageState(done, tensors, meta)

    def restore(self, state: StageState) -> int:
        """Inverse of :meth:`state`; returns the number of steps done."""
        load_branches(self.net, state.tensors)
        for name, opt in zip(_OPTIMISERS, self.optimisers, strict=True):
            restore_optimizer(opt, state.tensors, state.meta[name], name)
        self.generator.set_state(state.tensors["generator"])
        self.order = state.tensors["order"]
        self.history = list(state.meta["history"])
        self.epoch_losses = list(state.meta["epoch_losses"])
        return state.step


_OPTIMISERS = ("optim_rgb", "optim_geo")
