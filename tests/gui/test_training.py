"""Model → Train…: start and cancel, and a complete (tiny) training that re-scores the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gui.conftest import open_and_score

pytestmark = pytest.mark.gui


def _configure(dialog, folder: Path, output: Path) -> None:
    dialog.folder_edit.setText(str(folder))
    dialog._folder_changed()
    dialog.preset_combo.setCurrentIndex(dialog.preset_combo.findData("tiny"))
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.output_edit.setText(str(output))


def test_cancelled_training_keeps_the_current_model(
    qtbot, window, gui_dataset, fast_model, tmp_path
):
    open_and_score(qtbot, window, gui_dataset, fast_model)
    output = tmp_path / "never.mdss"
    dialog = window.commands.show_train_dialog()
    _configure(dialog, gui_dataset, output)
    assert "6 train" in dialog.data_summary.text()
    task = dialog.start_training()
    assert task is not None and window.task_status.isVisible()
    with qtbot.waitSignal(task.progress, timeout=30000):
        pass
    with qtbot.waitSignal(task.finished, timeout=60000):
        dialog.cancel_button.click()
    assert task.outcome == "cancelled"
    assert "cancelled" in dialog.stage_label.text()
    assert dialog.train_button.isEnabled()
    assert not output.exists()
    assert window.session.model is fast_model and len(window.session.predictions) > 0


def test_training_loads_the_new_model_and_rescores(qtbot, window, tmp_path):
    from mdss_core.synth import generate_dataset

    (folder,) = generate_dataset(tmp_path / "data", ["ring"], n_train=3, n_val=1, n_test=2,
                                 size=64, seed=11)  # fmt: skip
    with qtbot.waitSignal(window.commands.dataset_loaded, timeout=20000):
        window.commands.open_folder(folder)
    output = tmp_path / "trained.mdss"
    dialog = window.commands.show_train_dialog()
    _configure(dialog, folder, output)
    with qtbot.waitSignal(window.commands.inference_finished, timeout=180000) as finished:
        dialog.train_button.click()
    assert finished.args == ["done"]
    assert output.is_file() and window.session.model_path == str(output)
    assert window.settings.last_model == str(output)
    assert sorted(window.session.predictions) == sorted(
        r.key for r in window.session.dataset.select(split="test")
    )
    assert dialog.loss_points("rgb") > 0 and dialog.loss_points("geometry") > 0
    assert "Done" in dialog.stage_label.text()


def test_training_refuses_a_missing_folder(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    warned = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(lambda *a: warned.append(a[2])))
    dialog = window.commands.show_train_dialog()
    _configure(dialog, tmp_path / "nowhere", tmp_path / "m.mdss")
    assert dialog.start_training() is None
    assert "nowhere" in warned[-1] and not dialog.running


def test_dialog_defaults_to_the_cpu_preset_and_offers_the_built_in_teachers(window, tmp_path):
    dialog = window.commands.show_train_dialog()
    assert dialog.preset_combo.currentData() == "cpu"
    teachers = [dialog.teacher_combo.itemData(i) for i in range(dialog.teacher_combo.count())]
    assert teachers[:3] == ["backbone", "distilled", "random"] and teachers[-1] == "__choose__"
    assert dialog.options()["teacher"] == "backbone"
    dialog.teacher_combo.setCurrentIndex(1)
    assert dialog.options()["teacher"] == "distilled"
    dialog.set_teacher(str(tmp_path / "mine.pth"))
    assert dialog.options()["teacher"] == str(tmp_path / "mine.pth")


def test_default_model_path_is_in_the_workspace_never_in_the_data(window, gui_dataset, tmp_path):
    import os

    workspace = Path(os.environ["MDSS_WORKSPACE"])
    (workspace / "models").mkdir(parents=True)
    (workspace / "models" / f"{gui_dataset.name}.mdss").write_bytes(b"the user's model")
    dialog = window.commands.show_train_dialog()
    dialog.folder_edit.setText(str(gui_dataset))
    dialog.output_edit.setText("")
    dialog._folder_changed()
    output = Path(dialog.options()["output"])
    assert output.parent == workspace / "models" and output.name == f"{gui_dataset.name}-2.mdss"
    assert gui_dataset.parent not in output.parents


def _write_checkpoint(model_path: Path, stage: str, step: int) -> Path:
    """A checkpoint as a cancelled training leaves it (header and a token tensor)."""
    import torch

    from mdss_core.checkpoint import Checkpointer, StageState, checkpoint_path

    checkpoint = Checkpointer(checkpoint_path(model_path))
    checkpoint.begin("0123456789abcdef", {"rgb": 10, "geometry": 20})
    if stage == "geometry":
        checkpoint.stage_done("rgb", {"w": torch.zeros(2)})
    return checkpoint.save(stage, StageState(step, {"w": torch.ones(2)}, {}))


def test_dialog_offers_to_resume_a_checkpoint_of_the_chosen_output(window, tmp_path):
    with_checkpoint, without = tmp_path / "a.mdss", tmp_path / "b.mdss"
    _write_checkpoint(with_checkpoint, "geometry", 5)
    dialog = window.commands.show_train_dialog()
    dialog.output_edit.setText(str(without))
    assert not dialog.resume_check.isVisibleTo(dialog) and not dialog.options()["resume"]
    dialog.output_edit.setText(str(with_checkpoint))
    assert dialog.resume_check.isVisibleTo(dialog) and dialog.options()["resume"]
    assert "step 15 of 30" in dialog.resume_check.text()
    assert "3d" in dialog.resume_check.text().lower()
    dialog.resume_check.setChecked(False)  # start over instead
    assert dialog.options()["resume"] is False
    dialog.output_edit.setText(str(without))
    assert not dialog.resume_check.isVisibleTo(dialog) and not dialog.options()["resume"]


def test_resume_is_offered_for_the_detector_whose_training_the_checkpoint_holds(window, tmp_path):
    import torch

    from mdss_core.checkpoint import Checkpointer, StageState, checkpoint_path

    output = tmp_path / "crd.mdss"
    checkpoint = Checkpointer(checkpoint_path(output))
    checkpoint.begin("0123456789abcdef", {"crd": 12}, method="crd")
    checkpoint.save("crd", StageState(4, {"w": torch.ones(2)}, {}))
    dialog = window.commands.show_train_dialog()
    dialog.output_edit.setText(str(output))
    assert not dialog.resume_check.isVisibleTo(dialog)  # MDSS chosen: a new training
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData("crd"))
    assert dialog.resume_check.isVisibleTo(dialog) and dialog.options()["resume"]
    assert "step 4 of 12, CRD training" in dialog.resume_check.text()


def test_resuming_a_checkpoint_of_other_data_fails_with_one_line(
    qtbot, window, gui_dataset, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda *a: shown.append(a[2])))
    output = tmp_path / "m.mdss"
    ckpt = _write_checkpoint(output, "rgb", 3)
    dialog = window.commands.show_train_dialog()
    _configure(dialog, gui_dataset, output)
    assert dialog.options()["resume"]
    task = dialog.start_training()
    qtbot.waitUntil(lambda: task.outcome != "", timeout=60000)
    assert task.outcome == "failed" and shown
    assert shown[-1].startswith(f"{ckpt}: checkpoint was made for other data")
    assert "\n" not in shown[-1] and ckpt.is_file() and not output.exists()


@pytest.mark.parametrize("method", ["crd", "dmgrd"])
def test_each_detector_trains_from_the_menu_and_shows_its_maps(qtbot, window, tmp_path, method):
    from mdss_core.synth import generate_dataset

    (folder,) = generate_dataset(tmp_path / "data", ["ring"], n_train=4, n_val=1, n_test=2,
                                 size=64, seed=12)  # fmt: skip
    with qtbot.waitSignal(window.commands.dataset_loaded, timeout=20000):
        window.commands.open_folder(folder)
    output = tmp_path / f"{method}.mdss"
    dialog = window.commands.show_train_dialog()
    dialog.method_combo.setCurrentIndex(dialog.method_combo.findData(method))
    assert dialog.preset_combo.currentData() == "cpu"  # every method's default
    assert dialog.preset_combo.findData("fast") == -1  # MDSS-only preset
    assert not dialog.teacher_combo.isEnabled()  # the teacher choice is MDSS's
    _configure(dialog, folder, output)
    with qtbot.waitSignal(window.commands.inference_finished, timeout=180000) as finished:
        dialog.train_button.click()
    assert finished.args == ["done"]
    assert window.session.model.info()["method"] == method
    assert dialog.loss_points(method) > 0
    key = next(iter(window.session.predictions))
    prediction = window.session.predictions[key]
    assert prediction.fused_map.shape == prediction.map_3d.shape
    assert prediction.point_map[prediction.object_mask].any()  # the cloud gets the 3D map
    assert f"· {method} ·" in window.windowTitle()  # the title names the detector
