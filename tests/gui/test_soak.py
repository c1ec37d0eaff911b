"""Soak: five trainings back to back from Model → Train… with live progress and plots, two of
them cancelled (in the RGB stage, then in the 3D stage) and resumed by the next run.

Asserts that the window survives, a cancelled run keeps the model in use and the model file,
a completed run loads its new model and re-scores, resumed runs continue where the checkpoint
stopped, and progress reached the dialog's loss plot and the metrics panel. Runs under Qt's
offscreen platform and under ``xvfb-run``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from mdss_core import api
from mdss_core.config import PRESETS, tiny_preset

pytestmark = pytest.mark.gui

RGB_STEPS, SDF_STEPS = 40, 40  # long enough to cancel inside a stage, short on 2 cores


def soak_preset():
    config = tiny_preset()
    config.rgb = replace(config.rgb, steps=RGB_STEPS)
    config.sdf = replace(config.sdf, steps=SDF_STEPS)
    return config


@pytest.fixture
def soak_data(tmp_path) -> Path:
    from mdss_core.synth import generate_dataset

    (folder,) = generate_dataset(tmp_path / "data", ["ring"], n_train=4, n_val=1, n_test=2,
                                 size=64, seed=5)  # fmt: skip
    return folder


def _run(qtbot, window, dialog, cancel_in: str | None = None):
    """Click Train; with ``cancel_in``, click Cancel on the first training step of that stage.
    Returns the finished task and how many progress reports reached the dialog."""
    seen: list[str] = []
    dialog.train_button.click()
    task = dialog.task
    assert task is not None and task.running and window.task_status.isVisible()

    def on_progress(p) -> None:
        seen.append(p.stage)
        training = p.stage == "rgb" or (p.stage == "geometry" and p.total == SDF_STEPS)
        if cancel_in == p.stage and training and dialog.cancel_button.isEnabled():
            dialog.cancel_button.click()

    task.progress.connect(on_progress)
    if cancel_in is None:  # done → the window loads the model and re-scores the folder
        with qtbot.waitSignal(window.commands.inference_finished, timeout=60000) as scored:
            qtbot.waitUntil(lambda: task.outcome != "", timeout=60000)
        assert task.outcome == "done" and scored.args == ["done"]
        qtbot.waitUntil(lambda: not window.commands.metrics_running, timeout=30000)
    else:
        qtbot.waitUntil(lambda: task.outcome != "", timeout=60000)
        assert task.outcome == "cancelled"
    assert not dialog.running and dialog.train_button.isEnabled()
    return task, seen


def test_five_trainings_with_cancels_and_resumes(qtbot, window, soak_data, tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", soak_preset)
    started = time.monotonic()
    with qtbot.waitSignal(window.commands.dataset_loaded, timeout=20000):
        window.commands.open_folder(soak_data)
    out = tmp_path / "models" / "ring.mdss"
    out.parent.mkdir()
    dialog = window.commands.show_train_dialog()
    dialog.folder_edit.setText(str(soak_data))
    dialog._folder_changed()
    dialog.preset_combo.setCurrentIndex(dialog.preset_combo.findData("tiny"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.output_edit.setText(str(out))
    assert not dialog.resume_check.isVisibleTo(dialog)

    # 1: a complete training.
    _run(qtbot, window, dialog)
    first = window.session.model
    assert window.session.model_path == str(out) and out.is_file()
    assert dialog.plotted_points("rgb") > 0 and dialog.plotted_points("geometry") > 0
    assert window.curves_panel.report is not None  # the re-scored folder's metrics were drawn
    assert api.checkpoint_info(out) is None

    # 2: cancelled while the RGB student trains: the model in use and its file stay.
    saved = out.read_bytes()
    _, seen = _run(qtbot, window, dialog, cancel_in="rgb")
    assert "rgb" in seen and dialog.plotted_points("rgb") > 0
    assert window.session.model is first and out.read_bytes() == saved
    info = api.checkpoint_info(out)
    assert info is not None and info.stage == "rgb" and 0 < info.step < RGB_STEPS
    assert dialog.resume_check.isVisibleTo(dialog) and dialog.resume_check.isChecked()
    assert f"step {info.done} of {RGB_STEPS + SDF_STEPS}" in dialog.resume_check.text()

    # 3: resumes it and completes: a new model, loaded and used; the checkpoint is gone.
    _, seen = _run(qtbot, window, dialog)
    second = window.session.model
    assert second is not first and second.training["resumed_at_step"] == info.done
    assert out.read_bytes() != saved and api.checkpoint_info(out) is None
    assert not dialog.resume_check.isVisibleTo(dialog)

    # 4: a fresh run (resume not offered) cancelled in the 3D stage.
    saved = out.read_bytes()
    _, seen = _run(qtbot, window, dialog, cancel_in="geometry")
    assert dialog.plotted_points("geometry") > 0
    assert window.session.model is second and out.read_bytes() == saved
    info = api.checkpoint_info(out)
    assert info is not None and info.stage == "geometry" and info.done > RGB_STEPS

    # 5: resumes in the 3D stage: the student is not trained again.
    _, seen = _run(qtbot, window, dialog)
    third = window.session.model
    assert "rgb" not in seen and dialog.plotted_points("geometry") > 0
    assert third is not second and third.training["resumed_at_step"] == info.done
    assert api.checkpoint_info(out) is None and window.session.model_path == str(out)
    assert window.isVisible() and not window.commands.tasks.tasks
    print(f"soak: 5 trainings in {time.monotonic() - started:.1f} s")
