"""EfficientAD's Patch Description Network (PDN), used as both teacher and student (paper 3.1).

The PDN is an ``nn.Sequential`` so that its state-dict keys are the layer indices of the
published "nelson" teacher files (``0.weight``, ``3.weight``, ``6.weight``, ``8.weight`` …):
the index of every layer matters for reading those files.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

PDN_SIZES = ("small", "medium")
PDN_OUT_CHANNELS = 384

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Receptive field and stride of one output cell (derived from the layer list below).
RECEPTIVE_FIELD = 33
STRIDE = 4
# Padding of the 56×56 map that aligns output cells with input pixels (cell i ↔ pixel 4i+16).
MAP_PAD = 4

# Conv layers of each size: (state-dict index, in, out, kernel, padding used in pretraining);
# _OUT stands for the out_channels argument. Indices 1, 4, 7, 9, 11 are ReLUs and 2, 5 the 2×2
# average pools; the last conv has no ReLU.
_OUT = -1
_CONV_LAYOUT: dict[str, tuple[tuple[int, int, int, int, int], ...]] = {
    "small": (
        (0, 3, 128, 4, 3),
        (3, 128, 256, 4, 3),
        (6, 256, 256, 3, 1),
        (8, 256, _OUT, 4, 0),
    ),
    "medium": (
        (0, 3, 256, 4, 3),
        (3, 256, 512, 4, 3),
        (6, 512, 512, 1, 0),
        (8, 512, 512, 3, 1),
        (10, 512, _OUT, 4, 0),
        (12, _OUT, _OUT, 1, 0),
    ),
}
_POOLED_CONVS = 2  # the first two convs are each followed by ReLU + 2×2 average pool


def _checked_size(size: str) -> str:
    if size not in PDN_SIZES:
        raise ValueError(f"PDN size must be one of {PDN_SIZES}, not {size!r}")
    return size


def conv_indices(size: str) -> tuple[int, ...]:
    """State-dict indices of the conv layers of a PDN size, in order."""
    return tuple(layer[0] for layer in _CONV_LAYOUT[_checked_size(size)])


class PDN(nn.Sequential):
    """PDN-small (4 convs, ≈2.7 M parameters) or PDN-medium (6 convs).

    ``padding=True`` is only for distilling a teacher (the padded net maps S×S to S/4×S/4, the
    grid of the backbone features); training and inference use the unpadded net, which maps
    256×256 to 56×56. Input: ImageNet-normalised N×3×S×S (see :func:`normalize_images`); a
    student that also sees the surface-normal image takes ``in_channels=6`` (colour, normals).
    """

    def __init__(
        self,
        size: str = "small",
        out_channels: int = PDN_OUT_CHANNELS,
        padding: bool = False,
        in_channels: int = 3,
    ) -> None:
        layout = _CONV_LAYOUT[_checked_size(size)]
        pad_on = 1 if padding else 0
        layers: list[nn.Module] = []
        for position, (index, c_in, c_out, kernel, pad) in enumerate(layout):
            if index != len(layers):
                raise AssertionError("PDN layer table out of order")  # guards the file formats
            c_in = in_channels if position == 0 else c_in
            c_in = out_channels if c_in == _OUT else c_in
            c_out = out_channels if c_out == _OUT else c_out
            layers.append(nn.Conv2d(c_in, c_out, kernel, padding=pad * pad_on))
            if position < len(layout) - 1:
                layers.append(nn.ReLU(inplace=True))
            if position < _POOLED_CONVS:
                layers.append(nn.AvgPool2d(kernel_size=2, stride=2, padding=pad_on))
        super().__init__(*layers)
        self.size = size
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.padding = padding


def pdn_output_size(input_size: int, size: str = "small", padding: bool = False) -> int:
    """Side of the PDN output for a square input (256 → 56 unpadded, 256 → 64 padded)."""
    side = input_size
    pad_on = 1 if padding else 0
    for position, (_, _, _, kernel, pad) in enumerate(_CONV_LAYOUT[_checked_size(size)]):
        side = side + 2 * pad * pad_on - kernel + 1
        if position < _POOLED_CONVS:
            side = (side + 2 * pad_on - 2) // 2 + 1
    return side


def init_pdn_(pdn: PDN, seed: int, scheme: str = "torch-default") -> PDN:
    """Re-initialise every conv from a private generator (the global RNG is left alone).

    ``torch-default`` reproduces PyTorch's own Conv2d initialisation (used for the student);
    ``he-normal`` draws weights N(0, 2/fan_in) with zero biases, which keeps the activation
    scale steady through the ReLUs (used for the random default teacher).
    """
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in pdn.modules():
            if not isinstance(module, nn.Conv2d):
                continue
            fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
            if scheme == "torch-default":
                # kaiming_uniform(a=√5) gives bound 1/√fan_in for weights and biases alike.
                bound = 1.0 / math.sqrt(fan_in)
                module.weight.copy_(_uniform(module.weight.shape, bound, generator))
                if module.bias is not None:
                    module.bias.copy_(_uniform(module.bias.shape, bound, generator))
            elif scheme == "he-normal":
                std = math.sqrt(2.0 / fan_in)
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * std)
                if module.bias is not None:
                    module.bias.zero_()
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")
    return pdn


def _uniform(shape: torch.Size, bound: float, generator: torch.Generator) -> torch.Tensor:
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


def normalize_images(
    images: np.ndarray | torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """Images → ImageNet-normalised float32 N×3×H×W tensor (the ONLY place normalisation happens).

    Accepts uint8 (0–255) or float (0–1) data, channel-last N×H×W×3 / H×W×3 (numpy arrays or
    tensors) or channel-first N×3×H×W tensors. uint8 is always divided by 255; floats are taken
    as already in [0, 1]. The result stays on the input tensor's device.

    ``channels_last=True`` returns the same values in NHWC memory, the layout for inference:
    oneDNN / cuDNN convolutions run fastest on it (PDN forward ~1.3× faster on 2 CPU cores), and
    an H×W×3 image already lies that way, so no layout copy is made. ``.to(device)`` keeps it.
    Training keeps the default layout: a different layout changes the order of floating-point
    sums, and the student's training is chaotic enough that such 1-ulp differences change a
    trained model's image scores noticeably (run-to-run spread in docs/experiments.md);
    trained models stay reproducible.
    """
    from_numpy = isinstance(images, np.ndarray)
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if from_numpy else images
    if tensor.ndim == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 4:
        raise ValueError(f"expected N×H×W×3 or N×3×H×W images, got shape {tuple(tensor.shape)}")
    # numpy arrays are always channel-last; a tensor is channel-first unless dim 1 can't be RGB.
    channel_last = tensor.shape[-1] == 3 and (from_numpy or tensor.shape[1] != 3)
    if channel_last:
        tensor = tensor.permute(0, 3, 1, 2)
    if tensor.shape[1] != 3:
        raise ValueError(f"expected 3 colour channels, got shape {tuple(tensor.shape)}")
    tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float()
    mean = torch.tensor(IMAGENET_MEAN, device=tensor.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=tensor.device).view(1, 3, 1, 1)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return ((tensor - mean) / std).contiguous(memory_format=layout)
