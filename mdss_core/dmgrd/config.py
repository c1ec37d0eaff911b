"""DM-GRD settings (stored in the model file with the rest of :class:`MDSSConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from mdss_core.config_base import ConfigBase
from mdss_core.errors import ConfigError


@dataclass
class DMGRDConfig(ConfigBase):
    """Reverse distillation on MobileNetV2 blocks 3 / 6 / 13, guided by two memory banks."""

    blocks: tuple[int, ...] = (3, 6, 13)
    embed_channels: int = 256
    bank_size: int = 30  # images in each memory bank (normal, synthetic anomaly)
    steps: int = 1500
    batch_size: int = 8
    lr: float = 0.005
    beta1: float = 0.5
    beta2: float = 0.999
    ot_weight: float = 0.1  # compactness of normal projections (entropic optimal transport)
    margin_weight: float = 0.1  # synthetic-anomaly projections kept away from the normal ones
    margin: float = 0.5  # cosine similarity above which an anomaly projection is penalised
    top_k: int = 100  # image score: mean of the top-k pixels (DM-GRD)
    blur_sigma: float = 4.0
    textures: int = 64  # procedural texture images (never the evaluated parts)
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.blocks) != 3:
            raise ConfigError(f"dmgrd.blocks must name three MobileNetV2 blocks: {self.blocks}")
        if self.bank_size < 1 or self.steps < 1 or self.batch_size < 2:
            raise ConfigError("dmgrd: bank_size and steps ≥ 1, batch_size ≥ 2")
