"""Hyper-parameters of the RGB branch (paper Table 1); the named presets are in ``config.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mdss_core.config_base import ConfigBase
from mdss_core.errors import ConfigError
from mdss_core.rgb.pdn import PDN_OUT_CHANNELS, PDN_SIZES

TEACHER_KINDS = ("pdn", "mobilenet_v2")

# EfficientAD trains its student for 70 000 steps; MDSS gives no count, so the default keeps
# EfficientAD's (a GPU job: ≈ 4 × 70 000 image passes).
PAPER_STEPS = 70_000


@dataclass
class RGBConfig(ConfigBase):
    """Student-teacher training settings (Table 1: Adam, lr 0.001, batch 4, mask on, d cosine).

    The dynamic factor d is cosine-annealed from ``d_start`` = 0.99 to ``d_end`` = 0.999. Why
    this direction: early on the student is wrong almost everywhere, so averaging the top 1 % of
    the errors gives a broad, informative gradient; as training goes on the badly-fitted regions
    shrink (the paper's motivation: "the proportion of these regions will change dynamically"),
    so the loss narrows to the top 0.1 % — EfficientAD's fixed hard-loss quantile — which keeps
    the student from imitating the teacher everywhere (imitation beyond the normal data would
    also let it imitate anomalies). The reverse direction was measured and did no better
    (``docs/experiments.md``).
    """

    pdn_size: str = "small"
    steps: int = PAPER_STEPS
    batch_size: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-5
    d_start: float = 0.99
    d_end: float = 0.999
    mask_on: bool = True
    # Train on random crops of this many pixels (0 = whole images). Exact, not an
    # approximation (see train._crop_window); a 128-px crop costs about a quarter of a 256²
    # image, so a CPU budget buys four times the steps.
    crop: int = 0
    seed: int = 0
    amp: bool = True  # autocast only on CUDA; CPU training is always float32
    # What the student imitates: "pdn" (a PDN teacher: distilled, imported or random) or
    # "mobilenet_v2" (the pretrained backbone itself: ``teacher_blocks`` at ``teacher_scale``
    # times the model size, see ``rgb.backbone_teacher``). ``teacher_channels`` = its outputs.
    teacher: str = "pdn"
    teacher_blocks: tuple[int, ...] = (3, 6, 13)
    teacher_scale: float = 2.0
    teacher_channels: int = PDN_OUT_CHANNELS
    # The student also sees the surface-normal image of the cloud and reproduces the teacher's
    # features of it too: a second, geometric map from the same network (``preprocess.normals``).
    normals: bool = False
    # With ``normals``: the normal image's map comes from a memory of this many of the
    # training scans' foreground cells (nearest-cell distance, ``rgb.memory``) instead of the
    # student's error; 0 = the student's map. The student still learns both images (its colour
    # map was better so, docs/experiments.md).
    normals_memory: int = 0
    # Independent coreset draws of ``normals_memory`` cells each; the map averages their
    # nearest-cell distances (one draw alone is a lottery on real data, docs/experiments.md).
    normals_memory_draws: int = 1
    # "constant" (Table 1) or "cosine" (decay to 1 % of lr: without it a long run on real data
    # drifted after its best point, see docs/experiments.md).
    lr_schedule: str = "constant"

    def __post_init__(self) -> None:
        self.teacher_blocks = tuple(int(b) for b in self.teacher_blocks)
        if self.teacher not in TEACHER_KINDS:
            raise ConfigError(f"teacher must be one of {TEACHER_KINDS}, not {self.teacher!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be constant or cosine, not {self.lr_schedule!r}")
        if self.teacher_channels < 1 or self.teacher_scale <= 0:
            raise ConfigError("teacher_channels and teacher_scale must be positive")
        if self.pdn_size not in PDN_SIZES:
            raise ConfigError(f"pdn_size must be one of {PDN_SIZES}, not {self.pdn_size!r}")
        if self.normals_memory < 0:
            raise ConfigError("normals_memory must be 0 (off) or a number of cells")
        if self.normals_memory_draws < 1:
            raise ConfigError("normals_memory_draws must be at least 1")
        if self.normals_memory and not self.normals:
            raise ConfigError("normals_memory needs normals (the student's normal image)")
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError("steps and batch_size must be at least 1")
        for name in ("d_start", "d_end"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"{name} must lie strictly between 0 and 1")

    def lr_at(self, step: int) -> float:
        """Learning rate of ``step`` (0-based) under ``lr_schedule``."""
        if self.lr_schedule == "constant" or self.steps <= 1:
            return self.lr
        progress = min(step / (self.steps - 1), 1.0)
        return self.lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))
