"""CRD's networks: per modality a bottleneck and a decoder, with the crossmodal parts.

Reverse distillation (RD): a frozen teacher encoder gives features at three scales; a trained
bottleneck squeezes them into one embedding; a student decoder rebuilds the three scales from
it. On normal parts it learns to, on defects it cannot: the map is the sum over scales of
1 − cosine(teacher, student) per pixel.

CRD adds, per branch, the *other* modality's teacher features twice:

- Crossmodal Filter: those features squeezed to the embedding's 8×8 grid give a sigmoid gate on
  the branch's own embedding (what the other modality says is normal passes).
- Crossmodal Amplifier: at each decoder stage a small network maps the other modality's
  features at that scale onto this modality's, and a learned 2-way softmax weight blends it
  with the decoder's own output.

Training (``train.py``) applies the RD loss to the plain, filtered, amplified and blended
outputs; maps use the blended ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mdss_core.backbones.mobilenet_v2 import block_channels
from mdss_core.rgb.pdn import IMAGENET_MEAN, IMAGENET_STD


def _conv(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Squeeze(nn.Module):
    """Three teacher scales (strides 4/8/16) → one embedding at stride 32 (RD's OCBE)."""

    def __init__(self, channels: Sequence[int], embed: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.from1 = nn.Sequential(_conv(c1, c2, 3, 2), _conv(c2, c3, 3, 2))
        self.from2 = _conv(c2, c3, 3, 2)
        self.fuse = nn.Sequential(_conv(3 * c3, embed, 1), _conv(embed, embed, 3, 2))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        f1, f2, f3 = feats
        return self.fuse(torch.cat([self.from1(f1), self.from2(f2), f3], dim=1))


class Up(nn.Module):
    """One decoder stage: ×2 up-sampling and two convolutions; a linear last layer, like the
    MobileNetV2 block outputs it imitates."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ConvTranspose2d(c_in, c_out, 2, 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            _conv(c_out, c_out),
            nn.Conv2d(c_out, c_out, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Decoder(nn.Module):
    """Embedding (stride 32) → student features at strides 16, 8, 4 (returned fine to coarse)."""

    def __init__(self, channels: Sequence[int], embed: int) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.up3 = Up(embed, c3)
        self.up2 = Up(c3, c2)
        self.up1 = Up(c2, c1)

    def forward(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        d3 = self.up3(embedding)
        d2 = self.up2(F.relu(d3))
        d1 = self.up1(F.relu(d2))
        return [d1, d2, d3]


class Amplifier(nn.Module):
    """The other modality's features at one scale → this modality's, and the blend weight."""

    def __init__(self, c_other: int, c_own: int) -> None:
        super().__init__()
        self.map = nn.Sequential(_conv(c_other, c_own), nn.Conv2d(c_own, c_own, 3, 1, 1))
        # Softmax over (decoder, amplifier); starts at 3:1 for the decoder's own output.
        self.logits = nn.Parameter(torch.tensor([1.1, 0.0]))

    def forward(self, other: torch.Tensor) -> torch.Tensor:
        return self.map(other)

    def blend(self, own: torch.Tensor, amplified: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.logits, dim=0)
        return w[0] * own + w[1] * amplified


class CRDBranch(nn.Module):
    """One modality's student: bottleneck, decoder, crossmodal filter and amplifiers."""

    def __init__(self, channels: Sequence[int], embed: int, crossmodal: bool) -> None:
        super().__init__()
        self.crossmodal = crossmodal
        self.squeeze = Squeeze(channels, embed)
        self.decoder = Decoder(channels, embed)
        if crossmodal:
            self.filter = nn.Sequential(Squeeze(channels, embed), nn.Conv2d(embed, embed, 1))
            self.amplifiers = nn.ModuleList(Amplifier(c, c) for c in channels)

    def outputs(
        self, own: Sequence[torch.Tensor], other: Sequence[torch.Tensor]
    ) -> dict[str, list[torch.Tensor]]:
        """Every student output the loss sees: ``plain`` and, with the crossmodal parts,
        ``filtered``, ``amplified`` and ``blended`` (the one maps use)."""
        embedding = self.squeeze(own)
        plain = self.decoder(embedding)
        if not self.crossmodal:
            return {"plain": plain, "blended": plain}
        gate = torch.sigmoid(self.filter(other))
        filtered = self.decoder(embedding * gate)
        amplified = [amp(o) for amp, o in zip(self.amplifiers, other, strict=True)]
        blended = [
            amp.blend(f, a) for amp, f, a in zip(self.amplifiers, filtered, amplified, strict=True)
        ]
        return {"plain": plain, "filtered": filtered, "amplified": amplified, "blended": blended}

    def students(self, own: Sequence[torch.Tensor], other: Sequence[torch.Tensor]) -> list:
        """The blended student features alone (inference: no plain pass when crossmodal)."""
        embedding = self.squeeze(own)
        if not self.crossmodal:
            return self.decoder(embedding)
        gate = torch.sigmoid(self.filter(other))
        filtered = self.decoder(embedding * gate)
        return [
            amp.blend(f, amp(o)) for amp, f, o in zip(self.amplifiers, filtered, other, strict=True)
        ]


def rd_loss(teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor]) -> torch.Tensor:
    """RD's loss: mean over pixels and scales of 1 − cosine along channels."""
    terms = [
        (1 - F.cosine_similarity(t, s, dim=1)).mean() for t, s in zip(teacher, student, strict=True)
    ]
    return torch.stack(terms).sum()


def rd_map(
    teacher: Sequence[torch.Tensor], student: Sequence[torch.Tensor], size: int
) -> torch.Tensor:
    """N×size×size anomaly map: the sum over scales of 1 − cosine, bilinearly up-sampled."""
    total = None
    for t, s in zip(teacher, student, strict=True):
        d = (1 - F.cosine_similarity(t, s, dim=1)).unsqueeze(1)
        d = F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
        total = d if total is None else total + d
    assert total is not None
    return total[:, 0]


class ImageNorm(nn.Module):
    """uint8-range N×3×H×W → the ImageNet normalisation the teacher was trained with."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255.0)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


def frozen_features(
    teacher: nn.Module, norm: ImageNorm, images: np.ndarray, device: str
) -> list[torch.Tensor]:
    """A frozen teacher's features of uint8 N×S×S×3 images, on ``device``, without gradient."""
    batch = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    with torch.no_grad():
        return teacher(norm(batch.permute(0, 3, 1, 2).float()))


def branch_channels(blocks: Sequence[int]) -> tuple[int, int, int]:
    c1, c2, c3 = (block_channels(b) for b in blocks)
    return c1, c2, c3
