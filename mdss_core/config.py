"""Whole-model settings and the named presets (``paper``, ``fast``, ``tiny``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from mdss_core.errors import MDSSError
from mdss_core.geometry.config import SDFConfig
from mdss_core.preprocess.pipeline import PreprocessConfig
from mdss_core.rgb.config import RGBConfig, fast_config, paper_config


@dataclass
class MDSSConfig:
    """Everything that shapes a model; stored as JSON inside the model file."""

    preset: str = "custom"
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    rgb: RGBConfig = field(default_factory=RGBConfig)
    sdf: SDFConfig = field(default_factory=SDFConfig)
    sdf_blur_sigma: float = 4.0  # Gaussian blur of the 3D map (Shape-guided / facts file)
    # Validation samples held out of train when a dataset has no validation split.
    holdout_fraction: float = 0.15
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "preprocess": asdict(self.preprocess),
            "rgb": self.rgb.to_dict(),
            "sdf": self.sdf.to_dict(),
            "sdf_blur_sigma": self.sdf_blur_sigma,
            "holdout_fraction": self.holdout_fraction,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MDSSConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}")
        return cls(
            preset=data.get("preset", "custom"),
            preprocess=PreprocessConfig(**data.get("preprocess", {})),
            rgb=RGBConfig.from_dict(data.get("rgb", {})),
            sdf=SDFConfig.from_dict(data.get("sdf", {})),
            sdf_blur_sigma=float(data.get("sdf_blur_sigma", 4.0)),
            holdout_fraction=float(data.get("holdout_fraction", 0.15)),
            seed=int(data.get("seed", 0)),
        )

    def with_seed(self, seed: int) -> MDSSConfig:
        """The same settings with every branch seeded from ``seed``."""
        return replace(
            self, seed=seed, rgb=replace(self.rgb, seed=seed), sdf=replace(self.sdf, seed=seed)
        )


def paper_preset() -> MDSSConfig:
    """Table 1 at 256² with Shape-guided network sizes; step counts in the branch configs."""
    return MDSSConfig(preset="paper", rgb=paper_config(), sdf=SDFConfig.paper())


def fast_preset() -> MDSSConfig:
    """CPU preset: one synthetic category trains in ≤ 5 minutes on 2 cores."""
    return MDSSConfig(preset="fast", rgb=fast_config(), sdf=SDFConfig.fast())


def tiny_preset() -> MDSSConfig:
    """Seconds-long training for tests and smoke runs; not meant to detect anything well."""
    sdf = replace(SDFConfig.fast(), steps=5, batch_size=4, queries_per_patch=64)
    return MDSSConfig(
        preset="tiny",
        preprocess=PreprocessConfig(size=64),
        rgb=fast_config(steps=3, batch_size=2),
        sdf=replace(sdf, points_per_patch=64, sigma_neighbor=8, coverage=3.0),
        sdf_blur_sigma=1.0,
    )


PRESETS = {"paper": paper_preset, "fast": fast_preset, "tiny": tiny_preset}


def get_preset(name: str) -> MDSSConfig:
    try:
        return PRESETS[name]()
    except KeyError:
        raise MDSSError(f"unknown preset '{name}' (choose from {', '.join(PRESETS)})") from None
