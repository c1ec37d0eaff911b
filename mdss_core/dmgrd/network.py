"""DM-GRD's student side: memory guidance, multi-scale feature fusion, RD bottleneck, decoder.

For each input, the closest stored map in each memory bank (normal images' teacher features,
synthetic anomalies' teacher features; chosen on the coarsest scale) is looked up and the
squared differences to both are concatenated to the input's features; a fusion module with
channel attention projects them back per scale (the *projection* the separation losses act
on); CRD's / RD's bottleneck and decoder (:mod:`mdss_core.crd.network`) reconstruct the
teacher's features of the *normal* image from it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.crd.network import Decoder, Squeeze, _conv


class MemoryBanks(nn.Module):
    """Two fixed stacks of teacher features (3 scales each), stored in the model file."""

    def __init__(self, channels: Sequence[int], size: int, count: int) -> None:
        super().__init__()
        for name in ("normal", "anomaly"):
            for k, (c, stride) in enumerate(zip(channels, (4, 8, 16), strict=True)):
                side = size // stride
                self.register_buffer(f"{name}{k}", torch.zeros(count, c, side, side))

    def store(self, name: str, feats: Sequence[torch.Tensor]) -> None:
        for k, f in enumerate(feats):
            getattr(self, f"{name}{k}").copy_(f)

    def bank(self, name: str) -> list[torch.Tensor]:
        return [getattr(self, f"{name}{k}") for k in range(3)]

    def differences(self, feats: Sequence[torch.Tensor], name: str) -> list[torch.Tensor]:
        """(input − closest stored map)² per scale; closest by mean squared distance on the
        coarsest scale (cheap, and it sees the whole part)."""
        bank = self.bank(name)
        coarse = feats[-1].flatten(1)
        distances = torch.cdist(coarse, bank[-1].flatten(1))
        closest = distances.argmin(dim=1)
        return [(f - b[closest]) ** 2 for f, b in zip(feats, bank, strict=True)]


class Attention(nn.Module):
    """Squeeze-and-excitation channel attention."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class FeatureFusion(nn.Module):
    """Per scale: [features, diff to normal memory, diff to anomaly memory] → c channels."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            nn.Sequential(_conv(3 * c, c, 1), Attention(c), nn.Conv2d(c, c, 3, 1, 1))
            for c in channels
        )

    def forward(
        self,
        feats: Sequence[torch.Tensor],
        to_normal: Sequence[torch.Tensor],
        to_anomaly: Sequence[torch.Tensor],
    ) -> list[torch.Tensor]:
        return [
            layer(torch.cat([f, n, a], dim=1))
            for layer, f, n, a in zip(self.scales, feats, to_normal, to_anomaly, strict=True)
        ]


class GuidedStudent(nn.Module):
    """Memory-guided projection → bottleneck → decoder."""

    def __init__(self, channels: Sequence[int], embed: int, size: int, bank_size: int) -> None:
        super().__init__()
        self.memory = MemoryBanks(channels, size, bank_size)
        self.fusion = FeatureFusion(channels)
        self.squeeze = Squeeze(channels, embed)
        self.decoder = Decoder(channels, embed)

    def project(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return self.fusion(
            feats,
            self.memory.differences(feats, "normal"),
            self.memory.differences(feats, "anomaly"),
        )

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[list, list]:
        """(projections, student features)."""
        projected = self.project(feats)
        return projected, self.decoder(self.squeeze(projected))


def sinkhorn_distance(a: torch.Tensor, b: torch.Tensor, eps: float = 0.1, iters: int = 30):
    """Entropic optimal-transport cost between two sets of unit feature vectors (n×c, m×c)
    with uniform weights; cost = 1 − cosine. Log-domain Sinkhorn iterations."""
    a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    cost = 1 - a @ b.T
    n, m = cost.shape
    log_mu = torch.full((n,), -torch.log(torch.tensor(float(n))), device=cost.device)
    log_nu = torch.full((m,), -torch.log(torch.tensor(float(m))), device=cost.device)
    f = torch.zeros_like(log_mu)  # dual potentials
    g = torch.zeros_like(log_nu)
    for _ in range(iters):
        f = -eps * torch.logsumexp(log_nu[None, :] + (g[None, :] - cost) / eps, dim=1)
        g = -eps * torch.logsumexp(log_mu[:, None] + (f[:, None] - cost) / eps, dim=0)
    plan = torch.exp(log_mu[:, None] + log_nu[None, :] + (f[:, None] + g[None, :] - cost) / eps)
    return (plan * cost).sum()


def separation_losses(
    normal: Sequence[torch.Tensor],
    anomaly: Sequence[torch.Tensor],
    masks: torch.Tensor,
    margin: float,
    samples: int = 64,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(OT compactness of normal projections across images, margin loss of the anomaly
    projections inside the synthetic masks), on the coarsest scale."""
    p_n, p_a = normal[-1], anomaly[-1]
    n, c, h, w = p_n.shape
    flat = p_n.permute(0, 2, 3, 1).reshape(n, h * w, c)
    pick = torch.randperm(h * w, generator=generator)[: min(samples, h * w)].to(p_n.device)
    ot = torch.stack(
        [sinkhorn_distance(flat[i, pick], flat[(i + 1) % n, pick]) for i in range(n)]
    ).mean()
    small = F.interpolate(masks[:, None].float(), size=(h, w), mode="area")[:, 0] > 0.25
    similarity = F.cosine_similarity(p_a, p_n.detach(), dim=1)
    inside = similarity[small]
    hinge = F.relu(inside - margin).mean() if inside.numel() else similarity.sum() * 0.0
    return ot, hinge
