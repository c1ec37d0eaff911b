"""Student training, the trained branch, its maps and its tensors (tiny 64² images)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from mdss_core import fast_paths
from mdss_core.config import get_preset
from mdss_core.errors import Cancelled, ConfigError, ModelFileError
from mdss_core.rgb import (
    RGBBranch,
    RGBConfig,
    compute_teacher_stats,
    default_teacher,
    normalize_images,
    train_student,
)
from mdss_core.rgb import branch as branch_module
from mdss_core.rgb import train as train_module

SIZE = 64
CROP = 48  # a multiple of the PDN stride, smaller than SIZE


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(60, 200, (1, SIZE, SIZE, 3)).astype(np.int16)
    images = np.clip(base + rng.integers(-20, 20, (4, SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    masks = np.zeros((4, SIZE, SIZE), dtype=bool)
    masks[:, 8:56, 8:56] = True
    return images, masks


@pytest.fixture(scope="module")
def teacher():
    return default_teacher("small", seed=0)[0]


@pytest.fixture
def branch(teacher, data) -> RGBBranch:
    """A freshly trained branch per test: the tests change its weights and packed state."""
    images, masks = data
    return train_student(teacher, images, masks, _config())


def _config(**overrides) -> RGBConfig:
    return RGBConfig(**{"steps": 3, "batch_size": 2, **overrides})


def test_teacher_stats_match_direct_computation(teacher, data) -> None:
    images, _ = data
    mean, std = compute_teacher_stats(teacher, images, batch_size=3)
    with torch.no_grad():
        out = teacher(normalize_images(images))
    flat = out.transpose(0, 1).flatten(1)
    assert torch.allclose(mean, flat.mean(1), atol=1e-4)
    assert torch.allclose(std, flat.std(1, unbiased=False), rtol=1e-3, atol=1e-5)


def test_short_training_lowers_the_error(teacher, data) -> None:
    images, masks = data
    # A constant, low d makes the loss cover most elements, so a few steps visibly help.
    errors = []
    for steps in (1, 15):
        branch = train_student(
            teacher, images, masks, _config(steps=steps, batch_size=4, d_start=0.5, d_end=0.5)
        )
        with torch.no_grad():
            errors.append(branch(normalize_images(images)).mean().item())
    assert errors[1] < 0.9 * errors[0]


def test_training_is_deterministic_per_seed(teacher, data) -> None:
    images, masks = data
    a = train_student(teacher, images, masks, _config(seed=1))
    b = train_student(teacher, images, masks, _config(seed=1))
    c = train_student(teacher, images, masks, _config(seed=2))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["student.0.weight"], sc["student.0.weight"])
    # The caller's teacher is left untouched and frozen copies are used.
    assert torch.equal(sa["teacher.0.weight"], teacher[0].weight)


@pytest.mark.parametrize("crop", [0, CROP])
def test_teacher_cache_and_on_the_fly_targets_agree(teacher, data, monkeypatch, crop) -> None:
    # Too many images for the cache must not change training: the same crops are drawn and
    # the teacher run on a crop gives the slice of its whole-image output.
    images, masks = data
    cached = train_student(teacher, images, masks, _config(crop=crop))
    monkeypatch.setattr(train_module, "TEACHER_CACHE_BYTES", 0)
    live = train_student(teacher, images, masks, _config(crop=crop))
    for key, value in cached.state_dict().items():
        assert torch.allclose(value, live.state_dict()[key], atol=1e-5), key


def test_progress_and_cancel(teacher, data) -> None:
    images, masks = data
    cancel = threading.Event()
    reports = []

    def progress(report) -> None:
        reports.append(report)
        if report.stage == "rgb" and report.step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        train_student(teacher, images, masks, _config(steps=10), progress=progress, cancel=cancel)
    trained = [r for r in reports if r.metrics]
    assert [r.step for r in trained] == [1, 2]
    assert all(r.stage == "rgb" and r.total == 10 for r in trained)
    assert set(trained[0].metrics) == {"loss", "d"} and trained[0].metrics["d"] == 0.99


def test_maps_shape_and_state_roundtrip(branch, data, tmp_path: Path) -> None:
    images, _ = data
    maps = branch.anomaly_maps(images, batch_size=3)
    assert maps.shape == (4, SIZE, SIZE) and maps.dtype == np.float32
    assert np.all(maps >= 0) and maps.max() > 0
    assert branch.anomaly_maps(images[0]).shape == (1, SIZE, SIZE)

    path = tmp_path / "rgb.safetensors"
    save_file({k: v.contiguous() for k, v in branch.state_dict().items()}, str(path))
    restored = RGBBranch.from_state_dict(load_file(str(path)), RGBConfig())
    assert np.allclose(restored.anomaly_maps(images), maps, atol=1e-6)

    broken = dict(load_file(str(path)))
    broken["mean"] = torch.zeros(1, 3, 1, 1)
    with pytest.raises(ModelFileError, match="mean"):
        RGBBranch.from_state_dict(broken, RGBConfig(), source="broken.mdss")


def test_half_precision_maps_fall_back_to_float32_when_they_overflow(
    branch, data, monkeypatch
) -> None:
    images, _ = data
    float32 = branch.anomaly_maps(images)
    # CPU stands in for CUDA: float16 autocast through the modules (packed kernels bypass it).
    monkeypatch.setattr(branch_module, "inference_amp_dtype", lambda device, amp: torch.float16)
    with fast_paths.switched(False):
        half = branch.anomaly_maps(images, amp=True)
        assert not np.array_equal(half, float32)  # float16 really ran...
        np.testing.assert_allclose(half, float32, rtol=2e-2, atol=1e-4)  # ...and stayed close

        with torch.no_grad():  # first-layer outputs ~1e5: beyond float16's 65504
            branch.student[0].weight.mul_(1e5)
        x = normalize_images(images, channels_last=True)
        with torch.inference_mode():
            assert not torch.isfinite(branch._pixel_maps(x, torch.float16)).all()
        overflowed = branch.anomaly_maps(images, amp=True)
        assert np.isfinite(overflowed).all()
        np.testing.assert_array_equal(overflowed, branch.anomaly_maps(images))


def test_bad_arrays_are_rejected(teacher, data) -> None:
    images, masks = data
    with pytest.raises(ValueError, match="uint8"):
        train_student(teacher, images.astype(np.float32), masks, _config())
    with pytest.raises(ValueError, match="masks"):
        train_student(teacher, images, masks[:, :32], _config())


def test_config_roundtrip_and_presets() -> None:
    config = replace(get_preset("fast").rgb, seed=3)
    data = json.loads(json.dumps(config.to_dict()))
    assert RGBConfig.from_dict(data) == config
    paper = get_preset("paper").rgb
    assert paper.steps > config.steps
    assert (paper.lr, paper.batch_size) == (1e-3, 4)  # Table 1
    with pytest.raises(ConfigError, match="unknown"):
        RGBConfig.from_dict({**data, "future_knob": 1})
    with pytest.raises(ConfigError, match="d_end"):
        RGBConfig.from_dict({**data, "d_end": 1.5})


def test_crop_training_slices_the_teacher_output_exactly() -> None:
    """The crop shortcut relies on the unpadded PDN being stride-4 translation-equivariant."""
    import numpy as np
    import torch

    from mdss_core.rgb.pdn import PDN, init_pdn_, normalize_images
    from mdss_core.rgb.train import _crop_cells, _crop_pixels, _crop_window

    net = init_pdn_(PDN("small"), 0, "he-normal").eval()
    images = np.random.default_rng(1).integers(0, 255, (2, 128, 128, 3), np.uint8)
    rng = np.random.default_rng(5)
    crop = _crop_window(64, 128, "small", 24, rng, np.arange(2))
    assert crop is not None and crop.cells == 8
    with torch.no_grad():
        full = net(normalize_images(images))
        part = net(normalize_images(_crop_pixels(images, crop)))
    torch.testing.assert_close(_crop_cells(full, crop), part, atol=1e-5, rtol=1e-5)
    assert _crop_window(0, 128, "small", 24, rng, np.arange(2)) is None


def test_student_that_sees_normals_gives_two_maps(teacher, data, tmp_path: Path) -> None:
    """Colour + surface-normal images: a 6-channel student, one map per image kind."""
    images, masks = data
    normals = images[:, ::-1].copy()  # any second image of the same shape stands in
    config = _config(normals=True, lr_schedule="cosine")
    branch = train_student(teacher, images, masks, config, normals=normals)
    assert branch.groups == 2 and branch.student.in_channels == 6
    assert branch.mean.shape == (1, 2 * teacher.out_channels, 1, 1)
    maps = branch.map_groups(images[:2], normals[:2])
    assert maps.shape == (2, 2, SIZE, SIZE) and np.isfinite(maps).all()
    assert not np.allclose(maps[:, 0], maps[:, 1])  # two different targets, two maps
    # The colour-only call names what is missing instead of failing inside the network.
    with pytest.raises(ValueError, match="surface-normal"):
        branch.anomaly_maps(images[:1])
    # Round trip through the tensors with the config that describes the branch.
    path = tmp_path / "branch.safetensors"
    save_file({k: v.contiguous() for k, v in branch.state_dict().items()}, str(path))
    restored = RGBBranch.from_state_dict(load_file(str(path)), config)
    np.testing.assert_allclose(restored.map_groups(images[:2], normals[:2]), maps, rtol=1e-5)
    with pytest.raises(ValueError, match="must match"):
        train_student(teacher, images, masks, config, normals=normals[:, :32])


def test_cosine_schedule_decays_to_one_percent() -> None:
    config = _config(steps=101, lr=1e-3, lr_schedule="cosine")
    assert config.lr_at(0) == pytest.approx(1e-3)
    assert config.lr_at(50) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))
    assert config.lr_at(100) == pytest.approx(1e-5)
    assert _config(lr=1e-3).lr_at(100) == 1e-3  # Table 1: constant
    with pytest.raises(ValueError, match="lr_schedule"):
        _config(lr_schedule="step")
