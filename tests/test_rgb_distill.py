"""Teacher distillation end to end: a tiny random ResNet target and the shipped MobileNetV2."""

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
from mdss_core.rgb.distill_images import ImageBank
from mdss_core.rgb.distill_wrn import BackboneSpec, ResNetLayers23, load_backbone
from mdss_core.rgb.pdn import PDN
from mdss_core.rgb.teacher import load_teacher_file
from mdss_core.rgb.teacher_distill import (
    DistillSettings,
    distill_teacher,
    distillation_loss,
    mobilenet_target,
    wrn_target,
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
    target, target_origin = wrn_target(tiny_backbone, TINY)
    teacher, origin, normalised = distill_teacher(
        target,
        target_origin,
        image_dir,
        DistillSettings(steps=50, image_size=32, batch_size=2, lr=1e-3),
        progress=lambda p: losses.append(p.metrics["loss"]) if p.metrics else None,
    )
    assert isinstance(teacher, PDN) and not teacher.padding
    with torch.no_grad():
        assert teacher(torch.zeros(1, 3, 64, 64)).shape == (1, 384, 8, 8)
    assert origin["kind"] == "distilled" and origin["steps"] == 50
    assert origin["images"] + origin["heldout_images"] == 4 and origin["heldout_images"] == 1
    assert origin["target"]["kind"] == "tiny" and np.isfinite(origin["heldout_loss"])
    json.dumps(origin)
    assert len(losses) == 2 and all(np.isfinite(losses))  # one report per 25 steps
    # Targets are channel-normalised, so an untrained PDN starts near MSE 1 and learning lowers it.
    assert losses[-1] < 1.0
    assert normalised.mean.shape == (1, 384, 1, 1)


def test_distill_mobilenet_learns_and_beats_an_untrained_pdn(tmp_path: Path) -> None:
    """A short run on tiny generated images: held-out loss below the untrained network's."""
    rng = np.random.default_rng(1)
    for split, count in (("train", 6), ("heldout", 2)):
        (tmp_path / split).mkdir()
        for i in range(count):
            y, x = np.mgrid[0:48, 0:48]
            stripes = 127 + 120 * np.sin(x / rng.uniform(2, 6) + y / rng.uniform(3, 9))
            image = np.stack([stripes, stripes[::-1], np.full_like(stripes, rng.integers(255))], -1)
            cv2.imwrite(str(tmp_path / split / f"{i}.png"), image.astype(np.uint8))
    target, target_origin = mobilenet_target()
    settings = DistillSettings(steps=60, image_size=64, batch_size=4, lr=2e-3)
    teacher, origin, normalised = distill_teacher(target, target_origin, tmp_path, settings)
    assert teacher.out_channels == 152 and origin["target"]["blocks"] == [3, 6, 13]
    assert origin["images"] == 6 and origin["heldout_images"] == 2
    bank = ImageBank.from_files(
        sorted((tmp_path / "heldout").glob("*.png")), 64, torch.device("cpu")
    )
    untrained = PDN("small", 152)
    assert distillation_loss(teacher, normalised, bank) < distillation_loss(
        untrained, normalised, bank
    )


def test_time_budget_shortens_the_run(tiny_backbone: Path, image_dir: Path) -> None:
    target, target_origin = wrn_target(tiny_backbone, TINY)
    settings = DistillSettings(steps=10_000, image_size=32, batch_size=2, max_seconds=1e-3)
    _, origin, _ = distill_teacher(target, target_origin, image_dir, settings)
    assert 100 <= origin["steps"] < 10_000  # the probe steps run, then the budget stops it


def test_distill_cancel_and_empty_folder(
    tiny_backbone: Path, tmp_path: Path, image_dir: Path
) -> None:
    cancel = threading.Event()
    cancel.set()
    target, target_origin = wrn_target(tiny_backbone, TINY)
    settings = DistillSettings(steps=5, image_size=32, batch_size=2)
    with pytest.raises(Cancelled):
        distill_teacher(target, target_origin, image_dir, settings, cancel=cancel)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        distill_teacher(target, target_origin, tmp_path / "empty", settings)


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
    assert origin["out_channels"] == 384
