"""DM-GRD's training loop.

Once: the memory banks (``bank_size`` training images' teacher features, and the features of
one synthetic anomaly made from each). Every step: a batch of normal images and a synthetic
anomaly of each (:mod:`synthesis`); the student reconstructs the *normal* image's teacher
features from both (RD cosine loss), the normal projections of different images are pulled
together (entropic optimal transport) and the anomaly projections inside the masks are kept
below a cosine ``margin`` of the normal ones.
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
from mdss_core.crd.network import rd_loss
from mdss_core.crd.train import cached_features
from mdss_core.dmgrd.net import DMGRDNet
from mdss_core.dmgrd.network import separation_losses
from mdss_core.dmgrd.synthesis import synthesize, texture_bank
from mdss_core.preprocess.pipeline import PreparedSample
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

STAGE = "dmgrd"


def anomalies(
    images: np.ndarray, regions: np.ndarray, textures: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    pairs = [synthesize(im, reg, textures, rng) for im, reg in zip(images, regions, strict=True)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def fill_memory(
    net: DMGRDNet,
    images: np.ndarray,
    regions: np.ndarray,
    textures: np.ndarray,
    rng: np.random.Generator,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> None:
    count = net.config.dmgrd.bank_size
    pick = np.sort(rng.choice(len(images), size=count, replace=len(images) < count))
    normal = cached_features(net, images[pick], progress, cancel, "normal memory")  # type: ignore[arg-type]
    fake, _ = anomalies(images[pick], regions[pick], textures, rng)
    anomalous = cached_features(net, fake, progress, cancel, "anomaly memory")  # type: ignore[arg-type]
    net.student.memory.store("normal", normal)
    net.student.memory.store("anomaly", anomalous)


def train_dmgrd(
    net: DMGRDNet,
    train: Sequence[PreparedSample],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint: Checkpointer | None = None,
) -> list[float]:
    """Train the student in place for ``dmgrd.steps``; returns the loss per step.

    With a ``checkpoint`` the loop state is saved every ``checkpoint.every`` steps and on
    cancel, and a run the checkpoint stopped inside continues at its step. The memory banks
    and the clean images' features are built again first: they follow from the images and
    the seed, and the saved random state then replaces the one they leave."""
    config = net.config.dmgrd
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    images = np.stack([p.rgb for p in train])
    regions = np.stack([p.foreground_mask for p in train])
    textures = texture_bank(config.textures, images.shape[1], config.seed)
    fill_memory(net, images, regions, textures, rng, progress, cancel)
    clean = cached_features(net, images, progress, cancel, "colour images")  # type: ignore[arg-type]
    params = [p for p in net.student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2))
    batch = min(config.batch_size, len(train))
    history: list[float] = []
    resumed = checkpoint.resumed(STAGE) if checkpoint is not None else None
    start = 0 if resumed is None else _restore_loop(resumed, net, opt, rng, generator, history)
    net.train()
    for step in range(start, config.steps):
        if checkpoint is not None and cancel is not None and cancel.is_set():
            checkpoint.save(STAGE, _loop_state(step, net, opt, rng, generator, history))
        check_cancel(cancel, "DM-GRD training")
        pick = rng.choice(len(train), size=batch, replace=False)
        fake, masks = anomalies(images[pick], regions[pick], textures, rng)
        target = [f[torch.from_numpy(pick).to(net.device)] for f in clean]
        noisy = net.teacher_features(fake)
        proj_n, student_n = net.student(target)
        proj_a, student_a = net.student(noisy)
        ot, hinge = separation_losses(
            proj_n, proj_a, torch.from_numpy(masks).to(net.device), config.margin,
            generator=generator,
        )  # fmt: skip
        loss = (
            rd_loss(target, student_n)
            + rd_loss(target, student_a)
            + config.ot_weight * ot
            + config.margin_weight * hinge
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        report(progress, STAGE, step + 1, config.steps, "training DM-GRD", loss=history[-1])
        if checkpoint is not None and checkpoint.due(step + 1, config.steps):
            checkpoint.save(STAGE, _loop_state(step + 1, net, opt, rng, generator, history))
    net.eval()
    return history


def _loop_state(
    done: int,
    net: DMGRDNet,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    generator: torch.Generator,
    history: list[float],
) -> StageState:
    """Everything the loop needs to continue after ``done`` steps (see :mod:`checkpoint`)."""
    tensors, optim_meta = optimizer_state(opt)
    tensors.update(module_tensors("student", net.student))
    tensors["generator"] = generator.get_state()
    # numpy's generator state is plain JSON (its 128-bit integers included).
    meta = {"optimizer": optim_meta, "rng": rng.bit_generator.state, "history": history}
    return StageState(done, tensors, meta)


def _restore_loop(
    state: StageState,
    net: DMGRDNet,
    opt: torch.optim.Optimizer,
    rng: np.random.Generator,
    generator: torch.Generator,
    history: list[float],
) -> int:
    """Inverse of :func:`_loop_state` (``history`` is filled in place); the steps done."""
    load_module("student", net.student, state.tensors)
    restore_optimizer(opt, state.tensors, state.meta["optimizer"])
    rng.bit_generator.state = state.meta["rng"]
    generator.set_state(state.tensors["generator"])
    history[:] = state.meta["history"]
    return state.step
