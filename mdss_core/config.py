"""Whole-model settings and the named presets: one table, one function per preset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mdss_core.config_base import ConfigBase
from mdss_core.crd.config import CRDConfig
from mdss_core.dmgrd.config import DMGRDConfig
from mdss_core.errors import ConfigError, MDSSError
from mdss_core.fusion import FUSION_RULES
from mdss_core.geometry.config import SDFConfig
from mdss_core.preprocess.pipeline import PreprocessConfig
from mdss_core.rgb.config import RGBConfig


@dataclass
class MDSSConfig(ConfigBase):
    """Everything that shapes a model; stored as JSON inside the model file."""

    preset: str = "custom"
    method: str = "mdss"  # the detector: see METHODS
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    rgb: RGBConfig = field(default_factory=RGBConfig)
    sdf: SDFConfig = field(default_factory=SDFConfig)
    crd: CRDConfig = field(default_factory=CRDConfig)  # used when method == "crd"
    dmgrd: DMGRDConfig = field(default_factory=DMGRDConfig)  # used when method == "dmgrd"
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
        if self.method not in METHODS:
            raise ConfigError(f"method must be one of {tuple(METHODS)}, not {self.method!r}")
        if self.fusion not in FUSION_RULES:
            raise ConfigError(f"fusion must be one of {FUSION_RULES}, not {self.fusion!r}")
        if not 0.0 < self.threshold_quantile <= 1.0:
            raise ConfigError(
                f"threshold_quantile must lie in (0, 1], not {self.threshold_quantile}"
            )
        if self.rgb_blur_sigma < 0 or self.sdf_blur_sigma < 0:
            raise ConfigError("blur sigmas must not be negative")

    @property
    def image_top_k(self) -> int:
        """Pixels averaged into the image score (``zmax`` fusion); 0 = the maximum."""
        return self.dmgrd.top_k if self.method == "dmgrd" else 0

    def with_seed(self, seed: int) -> MDSSConfig:
        """The same settings with every branch seeded from ``seed``."""
        return replace(
            self,
            seed=seed,
            rgb=replace(self.rgb, seed=seed),
            sdf=replace(self.sdf, seed=seed),
            crd=replace(self.crd, seed=seed),
            dmgrd=replace(self.dmgrd, seed=seed),
        )


def paper_preset() -> MDSSConfig:
    """MDSS Table 1 at 256² with Shape-guided's network sizes (the dataclass defaults); a GPU
    job. The step counts are ours: 70 000 student steps as EfficientAD, 50 000 SDF batches."""
    return MDSSConfig(preset="paper")


def cpu_preset() -> MDSSConfig:
    """Real parts on a CPU (≈ 25 minutes for ~220 scans on 2 cores): the default.

    Measured on real cable glands (``docs/experiments.md``): the student imitates the pretrained
    teacher on both the colour image and the surface-normal image of the cloud (one network,
    two maps), 2000 steps of 128-px crops with the learning rate decayed on a cosine (a constant
    rate drifted after its best point); its maps are blurred (σ = 4 px) before their maxima are
    taken; the normal image's map is the mean distance to four memories of 4096 normal cells,
    independent coreset draws (one draw's map ranged 0.855–0.961 over six draws; the student's
    0.83); the 3D network is ``fast``'s; the maps are fused as z-scores of normal parts
    (RGB+3D 0.952–0.963 over three seeds).
    """
    fast = fast_preset()
    return MDSSConfig(
        preset="cpu",
        rgb=RGBConfig(
            steps=2000,
            crop=128,
            lr_schedule="cosine",
            normals=True,
            normals_memory=4096,
            normals_memory_draws=4,
        ),
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


def crd_cpu_preset() -> MDSSConfig:
    """CRD on a CPU: 512 px through MobileNetV2 blocks 6 / 13 / 16 (strides 8 / 16 / 32: the
    same 64 / 32 / 16 grids as 3 / 6 / 13 at 256 px, so the same decoder cost, from deeper
    features; on real cable glands RGB+3D I-AUROC 0.888 against 0.847, docs/experiments.md),
    the surface-normal image as 3D input, teacher features cached once; maps summed as z-scores
    of normal parts and the image score is the fused maximum (CRD's rule)."""
    return MDSSConfig(
        preset="cpu",
        method="crd",
        preprocess=PreprocessConfig(size=512),
        crd=CRDConfig(epochs=60, blocks=(6, 13, 16)),
        fusion="zmax",
    )


def crd_paper_preset() -> MDSSConfig:
    """CRD's published settings (256 px, Adam 0.005, batch 16) for a GPU: 200 epochs."""
    return MDSSConfig(preset="paper", method="crd", crd=CRDConfig(epochs=200), fusion="zmax")


def crd_tiny_preset() -> MDSSConfig:
    """Seconds-long CRD training for tests."""
    return MDSSConfig(
        preset="tiny",
        method="crd",
        preprocess=PreprocessConfig(size=64),
        crd=CRDConfig(epochs=2, batch_size=2, embed_channels=32, blur_sigma=1.0),
        fusion="zmax",
    )


def dmgrd_cpu_preset() -> MDSSConfig:
    """DM-GRD on the colour image (1500 steps of 8 images) and ``fast``'s SDF network for the
    cloud; maps summed as z-scores of normal parts, image score = mean of the top 100 pixels."""
    return MDSSConfig(
        preset="cpu", method="dmgrd", sdf=fast_preset().sdf, dmgrd=DMGRDConfig(), fusion="zmax"
    )


def dmgrd_paper_preset() -> MDSSConfig:
    """DM-GRD's published scale for a GPU (batch 16, 10 000 steps) and the paper's SDF net."""
    return MDSSConfig(
        preset="paper",
        method="dmgrd",
        dmgrd=DMGRDConfig(steps=10000, batch_size=16),
        fusion="zmax",
    )


def dmgrd_tiny_preset() -> MDSSConfig:
    """Seconds-long DM-GRD training for tests."""
    tiny = tiny_preset()
    return MDSSConfig(
        preset="tiny",
        method="dmgrd",
        preprocess=tiny.preprocess,
        sdf=tiny.sdf,
        sdf_blur_sigma=1.0,
        dmgrd=DMGRDConfig(
            steps=3, batch_size=2, bank_size=2, embed_channels=32, top_k=10, textures=2,
            blur_sigma=1.0,
        ),
        fusion="zmax",
    )  # fmt: skip


DEFAULT_PRESET = "cpu"
DEFAULT_METHOD = "mdss"

PRESETS: dict[str, Callable[[], MDSSConfig]] = {
    "cpu": cpu_preset,
    "paper": paper_preset,
    "fast": fast_preset,
    "tiny": tiny_preset,
}

# Each detector's presets by name; "cpu" is every method's default.
METHODS: dict[str, dict[str, Callable[[], MDSSConfig]]] = {
    "mdss": PRESETS,
    "crd": {"cpu": crd_cpu_preset, "paper": crd_paper_preset, "tiny": crd_tiny_preset},
    "dmgrd": {"cpu": dmgrd_cpu_preset, "paper": dmgrd_paper_preset, "tiny": dmgrd_tiny_preset},
}

METHOD_DESCRIPTIONS = {
    "mdss": "MDSS: student-teacher on RGB; normal-cell memory + signed distance on the cloud",
    "crd": "CRD: crossmodal reverse distillation, one branch per modality (RGB, normals)",
    "dmgrd": "DM-GRD + SDF: memory-guided reverse distillation on RGB, signed distance on 3D",
}


def get_preset(name: str, method: str = DEFAULT_METHOD) -> MDSSConfig:
    """The preset ``name`` of detector ``method``; one-line errors for unknown names."""
    if method not in METHODS:
        raise MDSSError(f"unknown method '{method}' (choose from {', '.join(METHODS)})")
    presets = METHODS[method]
    try:
        return presets[name]()
    except KeyError:
        raise MDSSError(
            f"unknown preset '{name}' for method {method} (choose from {', '.join(presets)})"
        ) from None
