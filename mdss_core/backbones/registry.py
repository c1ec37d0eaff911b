"""Pretrained weights mdss ships or accepts, as data: name, file, blocks kept, licence, sha256.

Weights are never fetched at run time. The shipped file lives in ``resources/backbones/`` with a
JSON card beside it (source, licence, blocks, dtype, sha256); the card's sha256 is checked on
every load, so a damaged or swapped file is a one-line error instead of a silently different
model. A user may point mdss at their own torchvision ``mobilenet_v2`` state dict instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from mdss_core.backbones.mobilenet_v2 import (
    MobileNetV2Features,
    load_mobilenet_v2,
    read_state_dict,
)
from mdss_core.errors import ModelFileError
from mdss_core.hashing import file_sha256

BACKBONES = ("mobilenet_v2",)
SHIPPED_DIR = ("backbones",)
SHIPPED_WEIGHTS = "mobilenet_v2_imagenet.safetensors"
SHIPPED_CARD = "mobilenet_v2_imagenet.card.json"


@dataclass(frozen=True)
class BackboneCard:
    """What a weights file is and where it came from (stored in every model that uses it)."""

    name: str
    file: str
    sha256: str
    last_block: int
    licence: str
    source: dict[str, Any]

    def origin(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "licence": self.licence,
            "source": self.source,
        }


def shipped_paths() -> tuple[Path, Path]:
    """(weights, card) of the shipped backbone inside the installed resources."""
    from mdss_resources import resource_path

    return resource_path(*SHIPPED_DIR, SHIPPED_WEIGHTS), resource_path(*SHIPPED_DIR, SHIPPED_CARD)


def read_card(path: Path) -> BackboneCard:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return BackboneCard(
            name=str(data["name"]),
            file=str(data["file"]),
            sha256=str(data["sha256"]),
            last_block=int(data["last_block"]),
            licence=str(data["licence"]),
            source=dict(data["source"]),
        )
    except FileNotFoundError:
        raise ModelFileError(path, "backbone card not found (broken install?)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(path, f"unreadable backbone card ({exc})") from None


@lru_cache(maxsize=1)
def _shipped_state() -> tuple[dict[str, torch.Tensor], BackboneCard]:
    weights, card_path = shipped_paths()
    card = read_card(card_path)
    if not weights.is_file():
        raise ModelFileError(weights, "shipped backbone weights not found (broken install?)")
    actual = file_sha256(weights)
    if actual != card.sha256:
        raise ModelFileError(weights, f"sha256 {actual[:12]}… does not match its card")
    state = {k: v.float() for k, v in read_state_dict(weights).items()}
    return state, card


def shipped_card() -> BackboneCard:
    return _shipped_state()[1]


def load_backbone(
    taps: tuple[int, ...], weights: str | Path | None = None
) -> tuple[MobileNetV2Features, dict[str, Any]]:
    """MobileNetV2 blocks up to ``max(taps)``: the shipped file, or a user's state dict.

    Returns the frozen network and a JSON-ready origin for the model file.
    """
    if weights is None:
        state, card = _shipped_state()
        if max(taps) > card.last_block:
            raise ModelFileError(
                card.file, f"ships blocks up to {card.last_block}; block {max(taps)} was asked for"
            )
        net = load_mobilenet_v2(state, taps, card.file)
        return net, {"backbone": card.origin(), "blocks": list(taps)}
    path = Path(weights)
    net = load_mobilenet_v2(read_state_dict(path), taps, path)
    origin = {"name": "mobilenet_v2", "file": path.name, "sha256": file_sha256(path)}
    return net, {"backbone": origin, "blocks": list(taps)}
