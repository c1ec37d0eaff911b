"""CRD settings (stored in the model file with the rest of :class:`MDSSConfig`)."""

from __future__ import annotations

from dataclasses import dataclass

from mdss_core.backbones.mobilenet_v2 import LAST_BLOCK, block_stride
from mdss_core.config_base import ConfigBase
from mdss_core.errors import ConfigError

INPUTS_3D = ("normals", "depth")


@dataclass
class CRDConfig(ConfigBase):
    """Reverse distillation on three MobileNetV2 blocks, each at twice the stride of the one
    before: 3 / 6 / 13 (strides 4 / 8 / 16, RD's three scales; 24 / 32 / 96 channels instead
    of WideResNet50's 256 / 512 / 1024) or, in the ``cpu`` preset at 512 px, 6 / 13 / 16
    (strides 8 / 16 / 32; 32 / 96 / 160 channels)."""

    input_3d: str = "normals"  # what the 3D branch sees: "normals" or "depth"
    blocks: tuple[int, ...] = (3, 6, 13)
    embed_channels: int = 256  # bottleneck embedding at twice the last block's stride
    epochs: int = 100
    batch_size: int = 16
    lr: float = 0.005  # RD / CRD: Adam, β = (0.5, 0.999)
    beta1: float = 0.5
    beta2: float = 0.999
    crossmodal: bool = True  # False: two plain RD branches (an ablation)
    blur_sigma: float = 4.0  # Gaussian blur of each modality's map (model pixels)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.input_3d not in INPUTS_3D:
            raise ConfigError(f"crd.input_3d must be one of {INPUTS_3D}, not {self.input_3d!r}")
        if len(self.blocks) != 3:
            raise ConfigError(f"crd.blocks must name three MobileNetV2 blocks, got {self.blocks}")
        self.blocks = tuple(int(b) for b in self.blocks)
        strides = [block_stride(b) if 1 <= b <= LAST_BLOCK else 0 for b in self.blocks]
        if strides[0] == 0 or strides != [strides[0], 2 * strides[0], 4 * strides[0]]:
            raise ConfigError(
                f"crd.blocks {self.blocks}: each block must have twice the stride of the one "
                "before (e.g. 3, 6, 13 or 6, 13, 16)"
            )
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("crd.epochs and crd.batch_size must be at least 1")
