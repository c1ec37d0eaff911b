"""Compute floor: FLOPs of the networks one prediction runs ÷ the machine's conv throughput."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mdss_core import fast_paths
from mdss_core.bench.measure import interleaved_ms
from mdss_core.geometry.network import patch_frame
from mdss_core.model import MDSSModel

# The reference convolution: 3×3, 256 → 256 channels on 64×64 — the width and map size of the
# PDN's middle layers at 256² input, so its throughput is one the PDN could reach.
CONV_SHAPE = (1, 256, 64, 64)
CONV_KERNEL = 3


def prediction_flops(model: MDSSModel, size: int, n_patches: int, k: int) -> dict[str, int]:
    """FLOPs of teacher + student on one S×S image and of the SDF net over P patches of k."""
    device = model.device
    image = torch.zeros(1, 3, size, size, device=device)
    patches = torch.rand(n_patches, k, 3, device=device)
    # no_grad, not inference_mode: weight_norm's parametrised weights fail to build under
    # FlopCounterMode + inference_mode (AttributeError 'weight', torch 2.x).
    with torch.no_grad():
        with FlopCounterMode(display=False) as rgb_counter:
            model.rgb(image)
        with FlopCounterMode(display=False) as sdf_counter:
            local = patch_frame(patches).apply(patches)
            model.sdf.decode(model.sdf.encode(local), local)
    rgb, sdf = int(rgb_counter.get_total_flops()), int(sdf_counter.get_total_flops())
    return {"rgb_flops": rgb, "sdf_flops": sdf, "total_flops": rgb + sdf}


def reference_conv(device: str) -> tuple[Callable[[], Any], int]:
    """The reference convolution as a call, and its FLOPs."""
    generator = torch.Generator().manual_seed(0)
    # Channels-last, the layout the PDN runs in and the faster one: the floor is the best case.
    x = torch.randn(CONV_SHAPE, generator=generator).to(device)
    x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(CONV_SHAPE[1], CONV_SHAPE[1], CONV_KERNEL, CONV_KERNEL, generator=generator).to(
        device
    )
    # On CPU the PDN runs on its fast path (pre-packed weights); so does the reference, if it can.
    layer = nn.Conv2d(CONV_SHAPE[1], CONV_SHAPE[1], CONV_KERNEL, padding=1, bias=False).to(device)
    with torch.no_grad():
        layer.weight.copy_(w)
    packed = fast_paths.pdn_forward(nn.Sequential(layer)) if device == "cpu" else None

    def conv() -> torch.Tensor:
        with torch.inference_mode():
            return packed(x) if packed else F.conv2d(x, w, padding=1)

    # Counted on the plain op: the flop counter does not know the packed one.
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        F.conv2d(x, w, padding=1)
    return conv, int(counter.get_total_flops())


def _throughput(flops: int, ms: float) -> dict[str, Any]:
    return {
        "conv_gflop": round(flops / 1e9, 3),
        "conv_ms": round(ms, 2),
        "gflops_per_s": round(flops / 1e9 / (ms / 1e3), 1),
    }


def compute_floor(
    model: MDSSModel,
    size: int,
    patch_shape: tuple[int, int],
    end_to_end: Callable[[], Any],
    pairs: int = 15,
) -> dict[str, Any]:
    """``floor_ms`` = prediction FLOPs / sustained conv throughput; end to end as a multiple.

    ``end_to_end()`` (one whole prediction) and the reference convolution are timed in
    alternation, ``pairs`` times each, so that the ratio compares like with like.
    """
    flops = prediction_flops(model, size, *patch_shape)
    conv, conv_flops = reference_conv(model.device)
    end_to_end_ms, conv_ms = interleaved_ms(end_to_end, conv, pairs, model.device)
    machine = _throughput(conv_flops, conv_ms)
    floor_ms = flops["total_flops"] / (machine["gflops_per_s"] * 1e9) * 1e3
    return {
        **flops,
        "gflop": round(flops["total_flops"] / 1e9, 3),
        **machine,
        "floor_ms": round(floor_ms, 3),
        "end_to_end_ms": round(end_to_end_ms, 2),
        "end_to_end_over_floor": round(end_to_end_ms / max(floor_ms, 1e-9), 2),
        "pairs": max(1, pairs),
        "threads": torch.get_num_threads(),
    }


__all__ = ["compute_floor", "prediction_flops", "reference_conv"]
