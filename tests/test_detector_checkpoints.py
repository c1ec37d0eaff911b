"""CRD and DM-GRD trainings checkpoint like MDSS's: a cancel saves the loop, a resume continues
at its step and ends where an uninterrupted run ends, a finished stage is not trained again,
and a checkpoint of another detector is refused in one line (tiny presets, 64² samples)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mdss_core import api
from mdss_core.checkpoint import Checkpointer, CheckpointError, checkpoint_path, read_info
from mdss_core.config import MDSSConfig, get_preset
from mdss_core.errors import Cancelled
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel
from mdss_core.progress import Progress
from tests.test_checkpoint import Recorder

CRD_STEPS = 6  # 2 epochs × 3 batches of the 6 training samples
DMGRD_STEPS, SDF_STEPS = 4, 8


def _crd() -> MDSSConfig:
    return get_preset("tiny", "crd")


def _dmgrd() -> MDSSConfig:
    config = get_preset("tiny", "dmgrd")
    config.dmgrd = replace(config.dmgrd, steps=DMGRD_STEPS)
    config.sdf = replace(config.sdf, steps=SDF_STEPS)
    return config


class StepRecorder(Recorder):
    """Also keeps each report's total: a stage's training steps apart from its other work
    (the SDF stage first counts the clouds it cuts patches from)."""

    def __init__(self, stop_at: tuple[str, int, int] | None = None) -> None:
        super().__init__(stop_at)
        self.reports: list[tuple[str, int, int]] = []

    def __call__(self, p: Progress) -> None:
        super().__call__(p)
        self.reports.append((p.stage, p.step, p.total))


def _fit(dataset, config: MDSSConfig, checkpoint: Checkpointer | None, recorder: Recorder):
    return MDSSModel.fit(
        dataset,
        config,
        device="cpu",
        progress=recorder,
        cancel=recorder.cancel,
        checkpoint=checkpoint,
    )


def _cancelled(dataset, config: MDSSConfig, path, stop_at: tuple[str, int, int]) -> None:
    with pytest.raises(Cancelled):
        _fit(dataset, config, Checkpointer(path, every=0), Recorder(stop_at))


def _resumed(dataset, config: MDSSConfig, path) -> tuple[MDSSModel, StepRecorder]:
    recorder = StepRecorder()
    return _fit(dataset, config, Checkpointer(path, every=0, resume=True), recorder), recorder


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    expected = b.state_dict()
    for name, tensor in a.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], msg=name)


def _steps(recorder: StepRecorder, stage: str, total: int | None = None) -> list[int]:
    """The steps reported in ``stage`` (of ``total`` steps, when given)."""
    return [step for s, step, n in recorder.reports if s == stage and total in (None, n)]


@pytest.fixture(scope="module")
def straight_crd(tiny_dataset) -> MDSSModel:
    return _fit(open_dataset(tiny_dataset), _crd(), None, Recorder())


@pytest.fixture(scope="module")
def straight_dmgrd(tiny_dataset) -> MDSSModel:
    return _fit(open_dataset(tiny_dataset), _dmgrd(), None, Recorder())


@pytest.mark.parametrize("stop", [2, 3])  # inside an epoch, and at an epoch's end
def test_crd_resumes_at_its_step_and_ends_like_an_uninterrupted_run(
    tiny_dataset, tmp_path, straight_crd, stop
):
    dataset, path = open_dataset(tiny_dataset), checkpoint_path(tmp_path / "crd.mdss")
    _cancelled(dataset, _crd(), path, ("crd", stop, CRD_STEPS))
    info = read_info(path)
    assert info is not None and (info.method, info.stage, info.step) == ("crd", "crd", stop)
    assert (info.done, info.total) == (stop, CRD_STEPS)

    model, recorder = _resumed(dataset, _crd(), path)
    assert _steps(recorder, "crd") == list(range(stop + 1, CRD_STEPS + 1))
    assert model.training["resumed_at_step"] == stop
    _assert_same_weights(model.net.rgb_branch, straight_crd.net.rgb_branch)
    _assert_same_weights(model.net.geo_branch, straight_crd.net.geo_branch)
    assert model.training["final_loss"] == straight_crd.training["final_loss"]
    assert model.image_threshold == pytest.approx(straight_crd.image_threshold, rel=1e-5)


def test_crd_cancelled_in_calibration_is_not_trained_again(tiny_dataset, tmp_path, straight_crd):
    dataset, path = open_dataset(tiny_dataset), tmp_path / "crd.mdss.ckpt"
    _cancelled(dataset, _crd(), path, ("calibrate", 1, 2))
    info = read_info(path)
    assert info is not None and info.stage == "calibrate" and info.done == CRD_STEPS
    model, recorder = _resumed(dataset, _crd(), path)
    assert _steps(recorder, "crd") == [] and _steps(recorder, "teacher-features") == []
    _assert_same_weights(model.net.rgb_branch, straight_crd.net.rgb_branch)
    assert model.training["final_loss"] == straight_crd.training["final_loss"]


def test_dmgrd_resumes_inside_its_loop(tiny_dataset, tmp_path, straight_dmgrd):
    dataset, path = open_dataset(tiny_dataset), tmp_path / "d.mdss.ckpt"
    _cancelled(dataset, _dmgrd(), path, ("dmgrd", 2, DMGRD_STEPS))
    info = read_info(path)
    assert info is not None and (info.method, info.stage, info.step) == ("dmgrd", "dmgrd", 2)
    assert info.total == DMGRD_STEPS + SDF_STEPS
    model, recorder = _resumed(dataset, _dmgrd(), path)
    assert _steps(recorder, "dmgrd") == [3, 4]
    assert _steps(recorder, "geometry", SDF_STEPS) == list(range(1, SDF_STEPS + 1))
    _assert_same_weights(model.net.student, straight_dmgrd.net.student)
    _assert_same_weights(model.net.sdf, straight_dmgrd.net.sdf)


def test_dmgrd_cancelled_in_the_sdf_stage_keeps_the_trained_student(
    tiny_dataset, tmp_path, straight_dmgrd
):
    dataset, path = open_dataset(tiny_dataset), tmp_path / "d.mdss.ckpt"
    _cancelled(dataset, _dmgrd(), path, ("geometry", 3, SDF_STEPS))
    info = read_info(path)
    assert info is not None and (info.stage, info.done) == ("geometry", DMGRD_STEPS + 3)
    model, recorder = _resumed(dataset, _dmgrd(), path)
    assert _steps(recorder, "dmgrd") == []  # the finished student came from the checkpoint
    assert _steps(recorder, "geometry", SDF_STEPS) == list(range(4, SDF_STEPS + 1))
    _assert_same_weights(model.net.student, straight_dmgrd.net.student)
    _assert_same_weights(model.net.sdf, straight_dmgrd.net.sdf)
    assert model.training["final_loss"] == straight_dmgrd.training["final_loss"]


def test_periodic_crd_checkpoints(tiny_dataset, tmp_path):
    checkpoint = Checkpointer(tmp_path / "c.ckpt", every=2)
    _fit(open_dataset(tiny_dataset), _crd(), checkpoint, Recorder())
    assert checkpoint.saves == 2  # after steps 2 and 4 (not after the last: the stage ends)


def test_another_detectors_checkpoint_is_refused_in_one_line(tiny_dataset, tmp_path):
    dataset, path = open_dataset(tiny_dataset), tmp_path / "m.mdss.ckpt"
    _cancelled(dataset, _crd(), path, ("crd", 2, CRD_STEPS))
    with pytest.raises(CheckpointError, match="other data or settings") as caught:
        _resumed(dataset, get_preset("tiny"), path)  # an MDSS training
    assert "\n" not in str(caught.value)
    # The front ends say which detector's training a checkpoint holds.
    info = api.checkpoint_info(tmp_path / "m.mdss")
    assert info is not None and info.method == "crd"
