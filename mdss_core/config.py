"""Whole-model settings and the named presets: one table, one function per preset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mdss_core.config_base import ConfigBase
from mdss_core.errors import ConfigError, MDSSError
from mdss_core.fusion import FUSION_RULES
from mdss_core.geometry.config import SDFConfig
from mdss_core.preprocess.pipeline import PreprocessConfig
from mdss_core.rgb.config import RGBConfig


@dataclass
class MDSSConfig(ConfigBase):
    """Everything that shapes a model; stored as JSON inside the model file."""

    preset: str = "custom"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    rgb: RGBConfig = field(default_factory=RGBConfig)
    sdf: SDFConfig = field(default_factory=SDFConfig)
    sdf_blur_sigma: float = 4.0  # Gaussian blur of the 3D map (Shape-guided / facts file)
    # Gaussian blur (model pixels) of the student's maps; 0 = none, the paper's maps.
    rgb_blur_sigma: float = 0.0
    fusion: str = "paper"  # "paper" or "zscore": see mdss_core.fusion
    # Default thresholds: this quantile of the normal validation scores (see fusion.calibrate).
    threshold_quantile: float = 0.95
    # Validation samples held out of train when a dataset has no validation split.
    holdout_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_RULES:
            raise ConfigError(f"fusion must be one of {FUSION_RULES}, not {self.fusion!r}")
        if not 0.0 < self.threshold_quantile <= 1.0:
            raise ConfigError(
                f"threshold_quantile must lie in (0, 1], not {self.threshold_quantile}"
            )
        if self.rgb_blur_sigma < 0 or self.sdf_blur_sigma < 0:
            raise ConfigError("blur sigmas must not be negative")

    def with_seed(self, seed: int) -> MDSSConfig:
        """The same settings with every branch seeded from ``seed``."""
        return replace(
            self, seed=seed, rgb=replace(self.rgb, seed=seed), sdf=replace(self.sdf, seed=seed)
        )


def paper_preset() -> MDSSConfig:
    """MDSS Table 1 at 256² with Shape-guided's network sizes (the dataclass defaults); a GPU
    job. The step counts are ours: 70 000 student steps as EfficientAD, 50 000 SDF batches."""
    return MDSSConfig(preset="paper")


def cpu_preset() -> MDSSConfig:
    """Real parts on a CPU (≈ 20 minutes for ~200 scans on 2 cores): the default.

    Measured on real cable glands (``docs/experiments.md``): the student imitates the pretrained
    teacher on both the colour image and the surface-normal image of the cloud (one network,
    two maps), 2000 steps of 128-px crops with the learning rate decayed on a cosine (a constant
    rate drifted after its best point); its maps are blurred (σ = 4 px) before their maxima are
    taken; the 3D network is ``fast``'s; the maps are fused as z-scores of normal parts.
    """
    fast = fast_preset()
    return MDSSConfig(
        preset="cpu",
        rgb=RGBConfig(steps=2000, crop=128, lr_schedule="cosine", normals=True),
        sdf=fast.sdf,
        rgb_blur_sigma=4.0,
        fusion="zscore",
    )


def fast_preset() -> MDSSConfig:
    """CPU preset: one synthetic category trains in a few minutes on 2 cores.

    RGB: 200 steps on 128-px crops, exact slices of the cached teacher output at a quarter of a
    whole image's cost. With so few steps the student is under-fitted everywhere and averaging
    only the top 1 % of errors from the first step barely moves it, so d starts at 0.9 (and
    still anneals to 0.999). 3D: a small network (~0.15 M parameters), fewer queries, a larger
    learning rate for the short run, the same 500-point patches.
    """
    return MDSSConfig(
        preset="fast",
        rgb=RGBConfig(steps=200, crop=128, d_start=0.9),
        sdf=SDFConfig(
            encoder_channels=(32, 64, 256),
            encoder_head=128,
            latent=64,
            hidden=128,
            decoder_layers=3,
            queries_per_patch=128,
            batch_size=16,
            steps=2000,
            lr=1e-3,
            lr_min=1e-5,
        ),
    )


def tiny_preset() -> MDSSConfig:
    """Seconds-long training for tests and smoke runs; not meant to detect anything well."""
    fast = fast_preset()
    return MDSSConfig(
        preset="tiny",
        preprocess=PreprocessConfig(size=64),
        rgb=replace(fast.rgb, steps=3, batch_size=2),
        sdf=replace(
            fast.sdf,
            steps=5,
            batch_size=4,
            queries_per_patch=64,
            points_per_patch=64,
            sigma_neighbor=8,
            coverage=3.0,
        ),
        sdf_blur_sigma=1.0,
    )


DEFAULT_PRESET = "cpu"

PRESETS: dict[str, Callable[[], MDSSConfig]] = {
    "cpu": cpu_preset,
    "paper": paper_preset,
    "fast": fast_preset,
    "tiny": tiny_preset,
}


def get_preset(name: str) -> MDSSConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise MDSSError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})") from None
