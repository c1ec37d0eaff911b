"""Which teacher a new model's student imitates: a name or a file, resolved to a module.

``backbone``   the shipped ImageNet MobileNetV2 itself (blocks 3/6/13, no distillation);
``distilled``  the shipped PDN distilled from that backbone on a generic image corpus;
``random``     a fixed-seed random PDN — for ablations only, it does not detect real defects;
a file path    a PDN teacher file (EfficientAD / anomalib / ``mdss teacher`` output).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdss_core.errors import ModelFileError

if TYPE_CHECKING:  # kept light: the CLI imports the names below before it needs torch
    from torch import nn

    from mdss_core.rgb.config import RGBConfig

TEACHER_NAMES = ("backbone", "distilled", "random")
DEFAULT_TEACHER = "backbone"
SHIPPED_DISTILLED = ("teachers", "pdn_small_mobilenet_v2.safetensors")


def describe_teacher(origin: dict[str, Any]) -> str:
    """One line for the CLI, the GUI and reports: which teacher a model was trained with."""
    kind = origin.get("kind", "?")
    if kind == "backbone":
        blocks = "/".join(str(b) for b in origin.get("blocks", []))
        return f"backbone: ImageNet MobileNetV2 blocks {blocks}"
    if kind == "default":
        return "random PDN (ablation only)"
    source = origin.get("source") or {}
    if source.get("kind") == "distilled":
        return f"distilled PDN ({origin.get('name', '')}, {source.get('steps', '?')} steps)"
    return f"PDN file {origin.get('name', '')}".strip()


def resolve_teacher(
    choice: str | Path | None, config: RGBConfig, seed: int = 0
) -> tuple[nn.Module, dict[str, Any], RGBConfig]:
    """(teacher module, JSON-ready origin, RGB config updated to describe that teacher)."""
    name = DEFAULT_TEACHER if choice in (None, "", "default") else str(choice)
    if name in ("backbone", "mobilenet_v2"):
        from mdss_core.backbones.registry import load_backbone
        from mdss_core.rgb.backbone_teacher import BackboneTeacher

        net, origin = load_backbone(config.teacher_blocks)
        teacher = BackboneTeacher(net, config.teacher_scale)
        updated = replace(config, teacher="mobilenet_v2", teacher_channels=teacher.out_channels)
        return teacher, {"kind": "backbone", "scale": config.teacher_scale, **origin}, updated
    if name == "random":
        from mdss_core.rgb.teacher import default_teacher

        teacher, origin = default_teacher(config.pdn_size, seed=seed)
        return teacher, origin, _pdn_config(config, teacher)
    if name == "distilled":
        from mdss_resources import resource_path

        path = resource_path(*SHIPPED_DISTILLED)
        if not path.is_file():
            raise ModelFileError(path, "no distilled teacher ships with this install")
    else:
        path = Path(name)
        if not path.exists() and path.suffix == "":
            raise ModelFileError(
                path, f"not a teacher file; named teachers are {', '.join(TEACHER_NAMES)}"
            )
    from mdss_core.rgb.teacher import load_teacher_file

    teacher, origin = load_teacher_file(path, config.pdn_size)
    return teacher, origin, _pdn_config(config, teacher)


def _pdn_config(config: RGBConfig, teacher: nn.Module) -> RGBConfig:
    return replace(config, teacher="pdn", teacher_channels=int(teacher.out_channels))
