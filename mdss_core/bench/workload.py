"""Benchmark inputs: settings, a synthetic dataset, prepared samples, briefly trained models."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mdss_core.config import MDSSConfig, get_preset
from mdss_core.fit import calibrate_net
from mdss_core.geometry.train import train_sdf
from mdss_core.io import SampleRef, open_dataset
from mdss_core.model import MDSSModel
from mdss_core.net import MDSSNet
from mdss_core.preprocess.pipeline import PreparedSample, prepare
from mdss_core.progress import CancelToken, check_cancel
from mdss_core.rgb.teacher import default_teacher
from mdss_core.rgb.train import train_student
from mdss_core.synth import generate_dataset

CATEGORY = "ring"


@dataclass(frozen=True)
class BenchSettings:
    """What one benchmark run measures; ``quick`` is the small, develop-and-test variant."""

    size: int = 256  # sensor and model resolution (square)
    n_train: tuple[int, ...] = (20, 50, 200)
    n_val: int = 2
    batch: int = 8  # images per batched RGB pass and samples per pipelined batch (throughput)
    pipeline_samples: int = 24  # samples run through batched, pipelined prediction
    repeats: int = 7  # timed calls per measurement (median reported; the VM is noisy)
    warmup: int = 1
    fit_steps: int = 2  # training steps of the scaling models: inference cost is what matters
    rgb_timed_steps: int = 5  # extra steps timed to get the per-step training cost
    sdf_timed_steps: int = 20
    seed: int = 0

    @classmethod
    def quick(cls) -> BenchSettings:
        return cls(
            size=128,
            n_train=(10, 20, 40),
            batch=4,
            pipeline_samples=12,
            repeats=3,
            rgb_timed_steps=3,
            sdf_timed_steps=5,
        )

    @classmethod
    def toy(cls) -> BenchSettings:
        """Seconds-long run for tests: tiny images, tiny training sets."""
        return cls(
            size=64,
            n_train=(2, 4),
            n_val=1,
            batch=2,
            pipeline_samples=4,
            repeats=1,
            warmup=0,
            rgb_timed_steps=1,
            sdf_timed_steps=1,
        )

    def config(self) -> MDSSConfig:
        """The ``fast`` preset at this resolution (``tiny``'s patch size below 128 px)."""
        base = get_preset("fast") if self.size >= 128 else get_preset("tiny")
        preprocess = replace(base.preprocess, size=self.size)
        return replace(base, preprocess=preprocess).with_seed(self.seed)


@dataclass
class Workload:
    """Samples on disk and their prepared forms, shared by all measurements."""

    settings: BenchSettings
    config: MDSSConfig
    train_refs: list[SampleRef]
    val_refs: list[SampleRef]
    train: list[PreparedSample]
    val: list[PreparedSample]


def build_workload(
    settings: BenchSettings, folder: Path, cancel: CancelToken | None = None
) -> Workload:
    """Write a synthetic category under ``folder`` and prepare its train/validation samples."""
    n_train = max(settings.n_train)
    paths = generate_dataset(
        folder,
        [CATEGORY],
        n_train,
        settings.n_val,
        1,
        settings.size,
        settings.seed,
        cancel=cancel,
        overwrite=True,
    )
    dataset = open_dataset(paths[0])
    config = settings.config()
    train_refs = [r for r in dataset if r.split == "train"]
    val_refs = [r for r in dataset if r.split == "validation"]

    def prepared(refs: list[SampleRef]) -> list[PreparedSample]:
        out = []
        for ref in refs:
            check_cancel(cancel, "benchmark preparation")
            out.append(prepare(ref.load(), config.preprocess))
        return out

    return Workload(
        settings, config, train_refs, val_refs, prepared(train_refs), prepared(val_refs)
    )


def train_model(work: Workload, n_train: int, device: str) -> MDSSModel:
    """An MDSS model on the first ``n_train`` samples with a few steps per branch.

    Inference cost does not depend on how long a model trained, so a few steps suffice; the
    data passes that scale with ``n_train`` (teacher statistics, patch cutting) still run.
    """
    cfg = work.config
    train = work.train[:n_train]
    teacher, origin = default_teacher(cfg.rgb.pdn_size, seed=cfg.seed)
    images = np.stack([p.rgb for p in train])
    masks = np.stack([p.foreground_mask for p in train])
    steps = work.settings.fit_steps
    rgb = train_student(teacher, images, masks, replace(cfg.rgb, steps=steps), device)
    sdf = train_sdf([p.points for p in train], replace(cfg.sdf, steps=steps), device)
    net = MDSSNet(rgb, sdf, cfg).to(device).eval()
    training = {"n_train": n_train, "steps": steps, "device": device}
    calibration = calibrate_net(net, work.val)
    return MDSSModel(net, calibration, origin, training, f"bench-{n_train}", device)
