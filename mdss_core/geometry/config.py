"""Settings of the 3D branch's SDF network; the named presets are in ``config.py``."""

from __future__ import annotations

from dataclasses import dataclass

from mdss_core.config_base import ConfigBase
from mdss_core.errors import ConfigError

NORMS = ("batch", "group", "none")


@dataclass
class SDFConfig(ConfigBase):
    """Sizes and training schedule of the PointNet encoder + implicit SDF decoder.

    Defaults follow MDSS Table 1 (500 points per patch, batch 32, cosine-annealed lr) and the
    Shape-guided network sizes the paper builds on; ``steps`` is not given in either paper.
    """

    # Patches (paper 4.2): FPS centres + k nearest points; each point lies in ~coverage patches.
    points_per_patch: int = 500
    coverage: float = 10.0
    # Encoder: per-point widths, then a fully connected layer before the latent.
    encoder_channels: tuple[int, int, int] = (64, 128, 1024)
    encoder_head: int = 512
    latent: int = 128
    # Decoder: width and number of weight-normalised hidden layers.
    hidden: int = 512
    decoder_layers: int = 7
    # "batch" matches Shape-guided; "group" keeps train and eval identical (no running stats).
    norm: str = "group"
    # Neural-Pull training.
    queries_per_patch: int = 500
    batch_size: int = 32
    steps: int = 50_000
    lr: float = 1e-4
    lr_min: float = 0.0
    seed: int = 0
    amp: bool = True
    # Query noise: copies[i] of every point at noise_scales[i] * sigma, sigma = distance to the
    # sigma_neighbor-th nearest other point of the patch.
    noise_scales: tuple[float, ...] = (0.5, 1.0)
    noise_copies: tuple[int, ...] = (13, 7)
    sigma_neighbor: int = 51

    def __post_init__(self) -> None:
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        self.noise_scales = tuple(float(s) for s in self.noise_scales)
        self.noise_copies = tuple(int(c) for c in self.noise_copies)
        self.validate()

    def validate(self) -> None:
        """Raise ``ConfigError`` with a one-line message for settings that cannot work."""
        problems = []
        if self.norm not in NORMS:
            problems.append(f"norm must be one of {NORMS}, got {self.norm!r}")
        if len(self.encoder_channels) != 3 or min(self.encoder_channels) < 1:
            problems.append("encoder_channels needs three positive widths")
        if len(self.noise_scales) != len(self.noise_copies) or not self.noise_scales:
            problems.append("noise_scales and noise_copies must be non-empty and of equal length")
        if any(c < 0 for c in self.noise_copies) or sum(self.noise_copies) <= 0:
            problems.append("noise_copies must be non-negative with a positive sum")
        if not 1 <= self.sigma_neighbor < self.points_per_patch:
            problems.append("sigma_neighbor must be in [1, points_per_patch)")
        positive = ("points_per_patch", "encoder_head", "latent", "hidden", "queries_per_patch")
        positive += ("batch_size", "steps")
        problems += [f"{name} must be positive" for name in positive if getattr(self, name) < 1]
        if self.decoder_layers < 0 or self.lr_min < 0:
            problems.append("decoder_layers and lr_min must not be negative")
        if self.coverage <= 0 or self.lr <= 0:
            problems.append("coverage and lr must be positive")
        if problems:
            raise ConfigError("invalid SDFConfig: " + "; ".join(problems))
