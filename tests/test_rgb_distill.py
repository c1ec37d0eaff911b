"""Teacher distillation end to end with a tiny random torchvision-style backbone."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mdss_core.cli import teacher_cmd
from mdss_core.errors import Cancelled, DataError, ModelFileError
from mdss_core.rgb.pdn import PDN
from mdss_core.rgb.teacher import load_teacher_file
from mdss_core.rgb.teacher_distill import (
    BackboneSpec,
    ResNetLayers23,
    distill_teacher,
    load_backbone,
)

TINY = BackboneSpec(blocks=(1, 1, 1), width_per_group=16, base_planes=64, name="tiny")


@pytest.fixture
def tiny_backbone(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    net = ResNetLayers23(TINY)
    state = net.state_dict()
    state["fc.weight"] = torch.zeros(10, 4)  # torchvision files carry layer4/fc: ignored
    state["layer4.0.conv1.weight"] = torch.zeros(1)
    path = tmp_path / "tiny_backbone.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        image = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    (folder / "notes.txt").write_text("not an image")
    return tmp_path / "images"


def test_backbone_matches_torchvision_key_layout() -> None:
    keys = ResNetLayers23(TINY).state_dict().keys()
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.downsample.0.weight",
        "layer2.0.conv2.weight",
        "layer3.0.bn3.bias",
    ):
        assert key in keys
    # Default spec = WideResNet-101-2 truncated after layer 3: 23 blocks in layer 3.
    assert BackboneSpec().blocks == (3, 4, 23) and BackboneSpec().width_per_group == 128


def test_backbone_shape_mismatch_is_reported(tmp_path: Path, tiny_backbone: Path) -> None:
    with pytest.raises(ModelFileError, match="layer1.0.conv1.weight"):
        load_backbone(tiny_backbone, BackboneSpec(blocks=(1, 1, 1), width_per_group=32))


def test_distill_end_to_end(tiny_backbone: Path, image_dir: Path) -> None:
    losses: list[float] = []
    teacher, origin = distill_teacher(
        tiny_backbone,
        image_dir,
        size="small",
        steps=12,
        image_size=32,
        progress=lambda p: losses.append(p.metrics["loss"]) if p.metrics else None,
        seed=0,
        backbone=TINY,
        batch_size=2,
        lr=1e-3,
    )
    assert isinstance(teacher, PDN) and not teacher.padding
    with torch.no_grad():
        assert teacher(torch.zeros(1, 3, 64, 64)).shape == (1, 384, 8, 8)
    assert origin["kind"] == "distilled" and origin["images"] == 4 and origin["steps"] == 12
    json.dumps(origin)
    assert len(losses) == 12 and all(np.isfinite(losses))
    # Targets are channel-normalised, so an untrained PDN starts near MSE 1 and learning lowers it.
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_distill_cancel_and_empty_folder(
    tiny_backbone: Path, tmp_path: Path, image_dir: Path
) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        distill_teacher(
            tiny_backbone,
            image_dir,
            steps=5,
            image_size=32,
            cancel=cancel,
            backbone=TINY,
            batch_size=2,
        )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        distill_teacher(tiny_backbone, tmp_path / "empty", steps=1, backbone=TINY)


def test_cli_distill_writes_a_loadable_teacher(
    tiny_backbone: Path, image_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "distilled.safetensors"
    parser = argparse.ArgumentParser()
    teacher_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "teacher",
            "distill",
            "--backbone",
            str(tiny_backbone),
            "--images",
            str(image_dir),
            "--out",
            str(out),
            "--steps",
            "2",
            "--image-size",
            "32",
            "--batch-size",
            "2",
            "--device",
            "cpu",
            "--backbone-blocks",
            "1,1,1",
            "--backbone-width",
            "16",
        ]
    )
    assert args.func(args) == 0
    _, origin = load_teacher_file(out)
    assert origin["format"] == "mdss" and origin["source"]["kind"] == "distilled"
