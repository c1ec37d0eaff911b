"""CPU inference form of the SDF decoder: oneDNN-packed weights, ReLU fused into each GEMM.

The decoder's per-query layers are (rows × 128) @ (128 × 128) products. Through oneDNN with the
weight packed once into its blocked layout and the ReLU applied inside the kernel, they ran
~20 % faster than ``F.linear`` + ReLU on 2 cores (torch 2.13, 8 patches × 500 queries), and the
geometry branch ~13 % faster. The result is the same function with the same weights (weight
norm is resolved once at packing time); only the order of float operations may differ.

The ops used (``torch.ops.mkldnn._linear_pointwise``, ``_reorder_linear_weight``) are the ones
torch's own CPU compiler emits; when a torch build lacks them, :func:`packed_decoder` returns
``None`` and callers use the module as is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from mdss_core.devices import onednn_ops_available
from mdss_core.geometry.network import ImplicitDecoder

Decode = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _ops_available() -> bool:
    return onednn_ops_available("_linear_pointwise", "_reorder_linear_weight")


def packed_decoder(decoder: ImplicitDecoder, rows: int) -> Decode | None:
    """``decode(latent (B, L), queries (B, Q, 3)) -> (B, Q)`` for CPU float32 inference.

    ``rows`` (B·Q of the batches to come) lets oneDNN pick its blocking; other row counts
    still work. Returns ``None`` when the fused ops are unavailable, refuse the weights, or fail
    on a one-query trial call.
    Call it under ``torch.inference_mode()``; the weights are snapshotted, so repack after
    training the decoder further.
    """
    if not _ops_available():
        return None
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
            return None

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
        return None
    return decode


__all__ = ["packed_decoder"]
