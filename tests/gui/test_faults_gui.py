"""Fault injection in the inspector (issue #19): failed loads and jobs leave no busy state behind,
every failure is one line, and ``--screenshot`` stops at the first error instead of timing out."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest
from safetensors import SafetensorError

pytestmark = pytest.mark.gui


def _unloadable_copy(source: Path, target: Path) -> Path:
    """A copy of the dataset whose every test cloud is truncated (fails to load)."""
    shutil.copytree(source, target)  # same category name: the model applies to it
    for tiff in (target / "test").glob("*/xyz/*.tiff"):
        tiff.write_bytes(tiff.read_bytes()[:300])
    return target


# Factories, not instances: a raised exception keeps its traceback (the worker's frames and
# the Qt objects they hold); one stored in the parameters would keep them until the run ends.
@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (
            lambda: OSError(errno.EROFS, "Read-only file system", "/out"),
            "/out: read-only file system",
        ),
        (
            lambda: SafetensorError("Error while deserializing header: HeaderTooLarge"),
            "damaged file",
        ),
        (MemoryError, "out of memory"),
    ],
    ids=["disk full", "read-only", "damaged safetensors", "memory"],
)
def test_worker_boundary_words_failures_like_the_cli(qtbot, make, expected):
    from mdss_app.workers import Task

    def fail(_ctx):
        raise make()

    task = Task("fail", fail)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        task.start()
    assert failed.args[0].startswith(expected) and "\n" not in failed.args[0]


def test_every_sample_failing_to_load_clears_the_busy_state(
    qtbot, window, gui_dataset, fast_model, tmp_path
):
    folder = _unloadable_copy(gui_dataset, tmp_path / "broken" / gui_dataset.name)
    with qtbot.waitSignal(window.error_shown, timeout=20000) as shown:
        window.commands.open_folder(folder)  # the first sample is selected and fails to load
    assert "truncated TIFF" in shown.args[0] and "\n" not in shown.args[0]
    with qtbot.waitSignal(window.commands.inference_finished, timeout=30000) as finished:
        window.commands.use_model(fast_model, "model.mdss", "CPU")
    assert finished.args == ["done"] and not window.session.predictions
    qtbot.waitUntil(lambda: not window.commands.tasks.tasks, timeout=10000)
    status = window.curves_panel.status.text()
    assert status.startswith("No sample could be scored:") and "truncated TIFF" in status
    assert not window.task_status.isVisible() and window.task_status.label.text() == ""


def test_a_failed_scoring_job_clears_scoring(qtbot, window, gui_dataset, fast_model, monkeypatch):
    def disk_error(*_a, **_k):
        raise OSError(errno.EIO, "Input/output error")

    with qtbot.waitSignal(window.commands.dataset_loaded, timeout=20000):
        window.commands.open_folder(gui_dataset)
    monkeypatch.setattr(fast_model, "score_many", disk_error)
    with qtbot.waitSignal(window.commands.inference_finished, timeout=30000) as finished:
        window.commands.use_model(fast_model, "model.mdss", "CPU")
    assert finished.args == ["failed"]
    assert window.last_error == "input/output error"
    assert window.curves_panel.status.text() == "Scoring failed: input/output error"
    qtbot.waitUntil(lambda: not window.task_status.isVisible(), timeout=10000)


def test_export_to_a_read_only_folder_is_one_line(qtbot, scored_window, tmp_path, monkeypatch):
    target = tmp_path / "ro"
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(target)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    with qtbot.waitSignal(scored_window.error_shown, timeout=30000) as shown:
        scored_window.commands.export_results(target)
    assert shown.args == [f"cannot write {target}: read-only file system"]
    assert not target.exists()


def test_screenshot_stops_at_the_first_failed_load(
    qapp, gui_dataset, gui_model_file, tmp_path, capsys
):
    from mdss_app.main import main

    folder = _unloadable_copy(gui_dataset, tmp_path / "broken" / gui_dataset.name)
    png = tmp_path / "window.png"
    # --timeout is only the guard: the run must stop on the error, not on the timeout.
    code = main(
        ["--screenshot", str(png), str(folder), "--model", str(gui_model_file), "--timeout", "120"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "mdss-gui: stopped: " in err and "truncated TIFF" in err
    assert "timed out" not in err
    assert png.is_file()  # the window as it was, error in the status bar
