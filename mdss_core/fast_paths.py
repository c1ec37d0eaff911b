"""CPU inference fast paths: the PDNs and the SDF decoder on pre-packed oneDNN weights.

``nn.Conv2d`` and ``F.linear`` on CPU reorder each weight into oneDNN's blocked layout on every
call and run the ReLU as a separate pass. Packing each weight once and fusing the ReLU into the
kernel computes the same function with the same weights, only the order of float operations
may differ (for the channels-last PDN input used at inference the maps are bit-identical). The
gains measured with ``mdss bench`` are in ``docs/experiments.md``.

All of it sits behind one switch: ``MDSS_FAST_PATHS=0`` in the environment, or
:func:`switched`, runs the plain modules everywhere. A packed form is built on first use, kept in
one cache with the identity of the weights it was built from (:func:`weights_key`), and rebuilt
when they change (training, ``load_state_dict``, ``to``). The ops used
(``torch.ops.mkldnn._convolution_pointwise``, ``_linear_pointwise`` and their weight reorders)
are the ones torch's own CPU compiler emits; a build that lacks them, refuses a weight, or fails
a trial call gets ``None`` and callers run the module as it is.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Forward = Callable[[torch.Tensor], torch.Tensor]
Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

ENVIRONMENT = "MDSS_FAST_PATHS"
_enabled = os.environ.get(ENVIRONMENT, "1") != "0"

# module → (weights_key + extra key, packed form or None, its bytes). Weak keys: a module that
# is dropped takes its packed form with it.
_packed: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, Any, int]] = weakref.WeakKeyDictionary()


def enabled() -> bool:
    return _enabled


@contextmanager
def switched(on: bool) -> Iterator[None]:
    """Fast paths on or off inside the block (tests and A/B timings)."""
    global _enabled
    before, _enabled = _enabled, on
    try:
        yield
    finally:
        _enabled = before


def weights_key(module: nn.Module) -> tuple[tuple[int, int], ...]:
    """Identity of a module's current weights: storage address and in-place version counter.

    Any in-place change (optimizer step, ``load_state_dict``) bumps a tensor's version, and
    moving or replacing a tensor changes its address, so a packed copy built for one key is
    stale exactly when the key differs.
    """
    return tuple((p.data_ptr(), p._version) for p in module.parameters())


def pdn_forward(pdn: nn.Module) -> Forward | None:
    """The packed form of a PDN (``nn.Sequential`` of convs, ReLUs, average pools), or None."""
    return _cached(pdn, (), lambda: pack_pdn(pdn))


def decoder_forward(decoder: nn.Module, rows: int) -> Decode | None:
    """The packed form of an SDF decoder for batches of ``rows`` queries, or None."""
    return _cached(decoder, (rows,), lambda: pack_decoder(decoder, rows))


def packed_bytes(module: nn.Module) -> int:
    """Memory held by the packed copies of ``module``'s submodules (0 before the first use)."""
    members = set(module.modules())
    return sum(size for owner, (_, _, size) in _packed.items() if owner in members)


def _cached(module: nn.Module, extra: tuple, build: Callable[[], tuple[Any, int]]) -> Any:
    if not _enabled:
        return None
    key = (weights_key(module), extra)
    entry = _packed.get(module)
    if entry is None or entry[0] != key:
        entry = (key, *build())
        _packed[module] = entry
    return entry[1]


def _ops_available(*names: str) -> bool:
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(hasattr(mkldnn, n) for n in names)


# ---------------------------------------------------------------------------- PDN
class PackedPDN:
    """A PDN's forward as fused, pre-packed steps."""

    def __init__(self, steps: list[Forward]) -> None:
        self.steps = steps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for step in self.steps:
            x = step(x)
        return x


# Side of the trial input: big enough for every PDN size (PDN-medium unpadded needs 33 px).
_TRIAL_SIDE = 64


def pack_pdn(pdn: nn.Module) -> tuple[PackedPDN | None, int]:
    """(forward equal to ``pdn(x)`` for CPU float32 inference, bytes of its packed weights).

    Each ``Conv2d`` is packed once, a ``ReLU`` right after it is fused into it, ``AvgPool2d``
    runs as is; any other layer type or a non-float32 or non-CPU weight gives ``(None, 0)``.
    Call the result under ``torch.inference_mode()``.
    """
    if not isinstance(pdn, nn.Sequential) or not _ops_available(
        "_convolution_pointwise", "_reorder_convolution_weight"
    ):
        return None, 0
    layers = list(pdn)
    steps: list[Forward] = []
    nbytes = 0
    with torch.no_grad():
        position = 0
        while position < len(layers):
            layer = layers[position]
            if isinstance(layer, nn.Conv2d):
                fuse_relu = position + 1 < len(layers) and isinstance(layers[position + 1], nn.ReLU)
                packed = _packed_conv(layer, "relu" if fuse_relu else "none")
                if packed is None:
                    return None, 0
                steps.append(packed[0])
                nbytes += packed[1]
                position += 2 if fuse_relu else 1
            elif isinstance(layer, nn.AvgPool2d):
                steps.append(layer)
                position += 1
            else:
                return None, 0
    net = PackedPDN(steps)
    return (net, nbytes) if _pdn_runs(net, layers) else (None, 0)


def _pdn_runs(net: PackedPDN, layers: list[nn.Module]) -> bool:
    """One small trial call: a build that packs but cannot run the fused kernels falls back."""
    convs = [layer for layer in layers if isinstance(layer, nn.Conv2d)]
    if not convs:
        return False  # nothing to pack: the module itself is as fast
    trial = torch.zeros(1, convs[0].in_channels, _TRIAL_SIDE, _TRIAL_SIDE)
    try:
        with torch.no_grad():
            net(trial.contiguous(memory_format=torch.channels_last))
    except RuntimeError:
        return False
    return True


def _packed_conv(conv: nn.Conv2d, attr: str) -> tuple[Forward, int] | None:
    """The conv as one fused step, and the bytes of its packed weight."""
    weight = conv.weight.detach()
    if weight.dtype != torch.float32 or weight.device.type != "cpu":
        return None
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return None
    padding, stride, dilation = list(conv.padding), list(conv.stride), list(conv.dilation)
    try:
        packed = torch.ops.mkldnn._reorder_convolution_weight(
            weight.contiguous(), padding, stride, dilation, conv.groups
        )
    except RuntimeError:
        return None
    bias = conv.bias.detach() if conv.bias is not None else None
    convolution = torch.ops.mkldnn._convolution_pointwise

    def step(x: torch.Tensor) -> torch.Tensor:
        return convolution(x, packed, bias, padding, stride, dilation, conv.groups, attr, [], "")

    return step, packed.numel() * packed.element_size()


# ---------------------------------------------------------------------------- SDF decoder
def pack_decoder(decoder: nn.Module, rows: int) -> tuple[Decode | None, int]:
    """(``decode(latent (B, L), queries (B, Q, 3)) -> (B, Q)``, bytes of its packed weights).

    For :class:`mdss_core.geometry.network.ImplicitDecoder` on CPU float32: its per-query
    layers are (rows × hidden) @ (hidden × hidden) products. ``rows`` (B·Q of the batches to
    come) lets oneDNN pick its blocking; other row counts still work. Weight norm is resolved
    once here. Call the result under ``torch.inference_mode()``.
    """
    if not _ops_available("_linear_pointwise", "_reorder_linear_weight"):
        return None, 0
    first = next(decoder.parameters(), None)
    if first is None or first.dtype != torch.float32 or first.device.type != "cpu":
        return None, 0
    linear = torch.ops.mkldnn._linear_pointwise
    hidden = decoder.fuse.out_features
    with torch.no_grad():
        w_xyz, w_lat = (part.contiguous() for part in decoder.fuse.weight.split(hidden, dim=1))
        try:

            def pack(weight: torch.Tensor) -> torch.Tensor:
                return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows)

            from_xyz = (pack(decoder.from_xyz.weight), decoder.from_xyz.bias.detach())
            fuse_xyz = pack(w_xyz)
            layers = [(pack(layer.weight), layer.bias.detach()) for layer in decoder.hidden_layers]
        except RuntimeError:
            return None, 0

    def decode(latent: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        batch, count, _ = queries.shape
        x = linear(queries.reshape(batch * count, 3), *from_xyz, "relu", [], "")
        x = linear(x, fuse_xyz, None, "none", [], "")
        # The latent half of the fused layer once per patch, added to each of its queries.
        lat = F.linear(F.relu(decoder.from_latent(latent)), w_lat, decoder.fuse.bias)
        x = x.view(batch, count, hidden).add_(lat.unsqueeze(1)).relu_().view(-1, hidden)
        for weight, bias in layers:
            x = linear(x, weight, bias, "relu", [], "")
        return decoder.out(x).view(batch, count)

    try:  # a build that packs but cannot run the fused kernels must fall back, not fail later
        with torch.no_grad():
            decode(torch.zeros(1, decoder.from_latent.in_features), torch.zeros(1, 1, 3))
    except RuntimeError:
        return None, 0
    tensors = [from_xyz[0], fuse_xyz, *(weight for weight, _ in layers)]
    return decode, sum(t.numel() * t.element_size() for t in tensors)


__all__ = [
    "ENVIRONMENT",
    "decoder_forward",
    "enabled",
    "pack_decoder",
    "pack_pdn",
    "packed_bytes",
    "pdn_forward",
    "switched",
    "weights_key",
]
