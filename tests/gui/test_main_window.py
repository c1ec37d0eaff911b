"""The real main window driven like a user: open, score, inspect, threshold, sort, export."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from scipy import ndimage

from mdss_app.panels.curves_panel import MODALITY_ROWS
from mdss_app.panels.inspector import fmt
from mdss_app.panels.sample_list import COL_DECISION, COL_FUSED, COL_SAMPLE
from mdss_core.io import open_dataset
from mdss_core.metrics import auroc

pytestmark = pytest.mark.gui
EIGHT = np.ones((3, 3), int)  # 8-connectivity, as the engine's regions


def test_opening_a_folder_scores_every_test_sample(scored_window, gui_dataset, cached_predictions):
    win = scored_window
    test_keys = [r.key for r in open_dataset(gui_dataset).select(split="test").refs]
    assert sorted(win.session.predictions) == sorted(test_keys)
    table = win.sample_list.model
    for key, prediction in cached_predictions.items():
        row = table.row_of(key)
        text = table.index(row, COL_FUSED).data()
        assert text == f"{prediction.score_fused:.3g}"
    # The first listed test sample is shown with its maps.
    shown = win.session.view.sample
    assert shown is not None and win.session.view.prediction.sample_key == shown.ref.key
    assert win.image_panel.base.image.shape[:2] == shown.shape
    assert win.fused_panel.overlay.image is not None
    assert len(win.session.score_table) == len(test_keys)
    assert "Device: CPU" in win.status_fields.device_label.text()


def _show_defective(qtbot, win):
    defective = [k for k, p in win.session.predictions.items() if "/good/" not in k]
    key = defective[0]
    win.sample_list.select_key(key)
    qtbot.waitUntil(lambda: _regions_at(win, win.session.thresholds.pixel, key), timeout=10000)
    return key


def _regions_at(win, threshold: float, key: str | None = None) -> bool:
    """True once the shown sample's regions are those at ``threshold`` (computed off the UI
    thread: a threshold change is answered a moment later)."""
    view = win.session.view
    ready = view.regions is not None and view.regions.threshold == threshold
    return ready and (key is None or view.key == key)


def _click_pixel(qtbot, panel, row: int, col: int) -> None:
    scene = panel.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    point = panel.graphics.mapFromScene(scene)
    qtbot.mouseClick(panel.graphics.viewport(), Qt.MouseButton.LeftButton, pos=point)


def test_clicking_a_defect_pixel_inspects_its_region(qtbot, scored_window):
    win = scored_window
    _show_defective(qtbot, win)
    sample, prediction = win.session.view.sample, win.session.view.prediction
    fused = prediction.fused_map.copy()
    # The strongest ground-truth pixel; put the threshold just under it so it forms a region.
    inside_gt = np.where(sample.gt, fused, -np.inf)
    row, col = np.unravel_index(int(np.argmax(inside_gt)), fused.shape)
    threshold = float(fused[row, col]) * 0.98
    win.session.set_pixel_threshold(threshold)
    assert win.session.thresholds.pixel == pytest.approx(threshold)

    with qtbot.waitSignal(win.selection_changed, timeout=5000) as picked:
        _click_pixel(qtbot, win.fused_panel, row, col)
    labels, _ = ndimage.label(fused >= win.session.thresholds.pixel, structure=EIGHT)
    component = labels == labels[row, col]
    region = picked.args[0]
    assert region.area_px == int(component.sum())
    assert region.max_fused == pytest.approx(float(fused[component].max()))
    assert win.inspector.value("selection", "area").startswith(f"{int(component.sum())} px")
    assert "mm²" in win.inspector.value("selection", "area")
    assert win.inspector.value("selection", "fused_0") == fmt(float(fused[component].max()))
    assert win.inspector.value("selection", "driver") != "—"
    assert len(win.fused_panel.selection.xData) > 0 and len(win.image_panel.selection.xData) > 0

    # Outside every region: local scores of that pixel, selection outline cleared.
    outside = np.argwhere(labels == 0)[0]
    result = win.inspect_pixel(int(outside[0]), int(outside[1]))
    assert isinstance(result, dict)
    assert result["fused"] == pytest.approx(float(fused[tuple(outside)]))
    assert win.inspector.value("selection", "what").startswith(
        f"pixel ({outside[0]}, {outside[1]})"
    )
    assert len(win.fused_panel.selection.xData) == 0


def test_threshold_slider_recomputes_regions_and_contour(qtbot, scored_window):
    win = scored_window
    _show_defective(qtbot, win)
    fused = win.session.view.prediction.fused_map
    panel = win.threshold_panel
    low = float(np.percentile(fused, 90))
    panel.set_pixel_range(float(fused.max()) * 2)
    panel.pixel_slider.setValue(round(low / panel._pixel_max * 1000))
    expected = win.session.thresholds.pixel
    assert expected == pytest.approx(low, rel=0.01)
    _, count = ndimage.label(fused >= expected, structure=EIGHT)
    assert count > 0
    qtbot.waitUntil(lambda: _regions_at(win, expected), timeout=5000)
    assert len(win.session.view.regions) == count
    assert len(win.fused_panel.threshold_curve.xData) > 0
    assert win.inspector.value("sample", "regions") == str(count)

    above = float(fused.max()) * 1.01
    win.session.set_pixel_threshold(above)
    qtbot.waitUntil(lambda: _regions_at(win, above), timeout=5000)
    assert len(win.session.view.regions) == 0
    assert len(win.fused_panel.threshold_curve.xData) == 0
    # The prediction itself is never changed: its regions stay at the model's threshold.
    assert win.session.view.prediction.pixel_threshold == win.session.model.pixel_threshold


def test_image_threshold_changes_every_decision(scored_window):
    win = scored_window
    table = win.sample_list.model
    scores = [p.score_fused for p in win.session.predictions.values()]

    def decisions():
        return [table.index(table.row_of(k), COL_DECISION).data() for k in win.session.predictions]

    win.session.set_image_threshold(max(scores) + 1)
    assert set(decisions()) == {"ok"}
    middle = float(np.median(scores))
    win.session.set_image_threshold(middle)
    assert decisions().count("defect") == sum(s >= middle for s in scores)
    assert "flagged" in win.threshold_panel.summary.text()


def test_list_sorts_filters_and_walks_with_keys(qtbot, scored_window):
    win = scored_window
    panel = win.sample_list
    panel.sort_by(COL_FUSED, descending=True)
    top = panel.proxy.index(0, COL_SAMPLE).data(Qt.ItemDataRole.UserRole + 2)
    assert top == max(win.session.predictions, key=lambda k: win.session.predictions[k].score_fused)

    panel.filter_edit.setText("good")
    shown = [panel.proxy.index(r, COL_SAMPLE).data() for r in range(panel.proxy.rowCount())]
    assert shown and all("good" in s for s in shown)
    panel.filter_edit.clear()
    panel.split_combo.setCurrentIndex(panel.split_combo.findData(""))
    assert panel.proxy.rowCount() == len(win.session.dataset)

    panel.select_row(0)
    win.activateWindow()  # shortcuts need an active window (no window manager under Xvfb)
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)
    panel.view.setFocus()
    first = panel.current_ref().key
    qtbot.keyClick(panel.view, Qt.Key.Key_D)
    second = panel.current_ref().key
    assert second != first
    qtbot.keyClick(panel.view, Qt.Key.Key_A)
    assert panel.current_ref().key == first
    qtbot.keyClick(panel.view, Qt.Key.Key_Down)
    assert panel.current_ref().key == second
    qtbot.waitUntil(lambda: win.session.view.sample is not None, timeout=5000)
    assert win.session.view.sample.ref.key == second


def test_metrics_table_matches_the_engine_metrics(scored_window):
    win = scored_window
    report = win.curves_panel.report
    assert report is not None
    refs = {r.key: r for r in win.session.dataset.refs}
    keys = list(win.session.predictions)
    labels = np.array([refs[k].label for k in keys])
    for modality, attr in (("fused", "score_fused"), ("rgb", "score_rgb"), ("3d", "score_3d")):
        scores = np.array([getattr(win.session.predictions[k], attr) for k in keys])
        expected = auroc(labels, scores)
        assert win.curves_panel.shown_value("i_auroc", modality) == f"{expected:.3f}"
        low, high = report.intervals[modality]
        assert low <= expected <= high
        item = win.curves_panel.table.item(MODALITY_ROWS.index(modality), 0)
        assert item.toolTip() == win.curves_panel.interval_text(modality)
        assert f"{low:.3f}–{high:.3f}" in item.toolTip()
    assert len(win.curves_panel.roc_plot.listDataItems()) >= 4  # diagonal + 3 modalities


def test_export_writes_maps_and_a_csv_of_decisions(qtbot, scored_window, tmp_path):
    win = scored_window
    scores = sorted(p.score_fused for p in win.session.predictions.values())
    win.session.set_image_threshold(scores[len(scores) // 2])
    before = dict(win.session.predictions)
    qtbot.waitUntil(lambda: win.curves_panel.report is not None, timeout=30000)
    task = win.commands.export_results(tmp_path / "out")
    with qtbot.waitSignal(task.finished, timeout=30000):
        pass
    assert task.outcome == "done", task.error
    with open(tmp_path / "out" / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(win.session.predictions)
    for row in rows:
        expected = win.session.predictions[row["key"]].score_fused >= win.session.thresholds.image
        assert row["decision"] == ("anomalous" if expected else "normal")
    for name in ("fused", "rgb", "3d"):
        assert len(list((tmp_path / "out").rglob(f"*_{name}_overlay.png"))) == len(rows)
    model_name = win.session.model.info()["name"]
    assert all(row["model_name"] == model_name for row in rows)
    with open(tmp_path / "out" / "regions.csv", newline="") as handle:
        regions = list(csv.DictReader(handle))
    assert len(regions) == sum(int(row["regions"]) for row in rows)
    report = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    flagged = sum(row["decision"] == "anomalous" for row in rows)
    assert f"Flagged anomalous</th><td>{flagged}<" in report
    assert f"Data folder</th><td>{win.session.dataset.root}<" in report
    assert 'class="operating-point"' in report  # the tiny test split has both labels
    assert "<td>mean</td>" in report  # the metrics panel's per-defect table, not recomputed
    # The window's own predictions are the same objects, with the model's thresholds.
    assert dict(win.session.predictions) == before
    model_image = win.session.model.image_threshold
    assert all(p.image_threshold == model_image for p in before.values())


def test_bad_files_show_a_message_and_keep_the_session(
    qtbot, settings, fast_model, gui_dataset, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    from mdss_app.main_window import MainWindow
    from tests.gui.conftest import open_and_score

    shown = []
    monkeypatch.setattr(
        QMessageBox, "warning", staticmethod(lambda parent, title, text: shown.append(text))
    )
    win = MainWindow(settings=settings, enable_vtk=False, interactive=True)
    qtbot.addWidget(win)
    win.show()
    open_and_score(qtbot, win, gui_dataset, fast_model)
    before = dict(win.session.predictions)

    bad = tmp_path / "broken.mdss"
    bad.write_bytes(b"this is not a model")
    with qtbot.waitSignal(win.error_shown, timeout=30000):
        win.commands.open_model(bad)
    assert "broken.mdss" in shown[-1] and "\n" not in shown[-1]

    with qtbot.waitSignal(win.error_shown, timeout=5000):
        win.commands.open_folder(tmp_path / "missing")
    assert "missing" in shown[-1]
    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(win.error_shown, timeout=5000):
        win.commands.open_folder(empty)
    assert "no samples" in shown[-1]

    teacher = tmp_path / "teacher.pth"
    teacher.write_bytes(b"junk")
    with qtbot.waitSignal(win.error_shown, timeout=30000):
        win.commands.import_teacher(teacher)
    assert "teacher.pth" in shown[-1]
    assert settings.teacher_path == ""

    assert win.session.model is fast_model and win.session.dataset.root == gui_dataset
    assert win.session.predictions == before
    assert len(shown) == 4


def test_a_broken_sample_is_skipped_and_the_rest_scored(
    qtbot, window, gui_dataset, fast_model, tmp_path
):
    import shutil

    from tests.gui.conftest import open_and_score

    folder = tmp_path / "copy" / gui_dataset.name  # same category: the model applies
    shutil.copytree(gui_dataset, folder)
    broken = sorted((folder / "test").glob("*/xyz/*.tiff"))[-1]
    broken.write_bytes(b"not a tiff")
    open_and_score(qtbot, window, folder, fast_model)
    n_test = len(window.session.dataset.select(split="test"))
    assert len(window.session.predictions) == n_test - 1
    assert broken.name in window.session.problems[0]
    assert "1 skipped" in window.statusBar().currentMessage()


def test_real_model_file_scores_the_folder_in_the_background(
    qtbot, window, gui_dataset, gui_model_file
):
    win = window
    with qtbot.waitSignal(win.commands.dataset_loaded, timeout=20000):
        win.commands.open_folder(gui_dataset)
    arrived = []
    win.prediction_arrived.connect(arrived.append)
    with qtbot.waitSignal(win.commands.inference_finished, timeout=90000) as finished:
        win.commands.open_model(gui_model_file)
    assert finished.args == ["done"]
    assert win.session.model_path == str(gui_model_file)
    assert arrived[0] == win.session.view.ref.key  # what the user looks at is scored first
    assert sorted(arrived) == sorted(r.key for r in win.session.dataset.select(split="test").refs)
    assert win.status_fields.time_label.text().endswith("ms")


def test_demo_opens_its_data_and_model(
    qtbot, window, gui_dataset, gui_model_file, monkeypatch, fast_model
):
    from mdss_core import api

    monkeypatch.setattr(api, "demo_dataset", lambda: gui_dataset)
    monkeypatch.setattr(api, "demo_model_path", lambda: gui_model_file)
    monkeypatch.setattr(api, "load_model", lambda path, device="auto": fast_model)
    with qtbot.waitSignal(window.commands.inference_finished, timeout=30000):
        window.commands.start_demo()
    assert window.session.dataset_is_demo and "(demo)" in window.windowTitle()
    assert window.session.model is fast_model and window.session.predictions
    assert window.settings.last_folder == ""  # the demo does not replace the user's folder


def test_settings_remember_folder_and_layout(qtbot, scored_window, settings, gui_dataset):
    from mdss_app.main_window import MainWindow

    assert settings.last_folder == str(gui_dataset)
    scored_window.metrics_dock.hide()
    scored_window.close()
    again = MainWindow(settings=settings, enable_vtk=False, interactive=False)
    qtbot.addWidget(again)
    again.show()
    assert not again.metrics_dock.isVisible()


def test_2d_views_share_zoom_and_crosshair(scored_window):
    win = scored_window
    h, w = win.session.view.sample.shape
    win.image_panel.view.setRange(xRange=(2, w // 2), yRange=(3, h // 2), padding=0)

    def centre_and_scale(view):
        (x0, x1), (y0, y1) = view.viewRange()
        return [(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / view.width()]

    image = centre_and_scale(win.image_panel.view)
    assert image[2] < (w / win.image_panel.view.width())  # zoomed in
    np.testing.assert_allclose(centre_and_scale(win.fused_panel.view), image, rtol=1e-6)
    win.fused_panel.view.scaleBy((0.5, 0.5))  # zooming the other view zooms this one as well
    np.testing.assert_allclose(
        centre_and_scale(win.image_panel.view), centre_and_scale(win.fused_panel.view), rtol=1e-6
    )

    win.hover(5, 7)
    for panel in (win.image_panel, win.fused_panel):
        assert panel.cross_v.isVisible() and panel.cross_v.value() == 7.5
        assert panel.cross_h.value() == 5.5
    assert win.status_fields.pixel_label.text().startswith("pixel (5, 7)")
    win.hover(-1, -1)
    assert not win.fused_panel.cross_v.isVisible()


def test_title_and_status_say_which_model_preset_and_teacher(
    qtbot, window, gui_dataset, fast_model
):
    from tests.gui.conftest import open_and_score

    open_and_score(qtbot, window, gui_dataset, fast_model)
    preset = fast_model.config.preset
    assert f"· {preset} ·" in window.windowTitle()
    label = window.status_fields.model_label
    assert preset in label.text() and "MobileNetV2" in label.toolTip()
    assert "fusion: paper" in label.toolTip()


def test_a_model_of_another_category_is_not_used_silently(qtbot, window, gui_dataset, fast_model):
    class TrainedOnDisc:  # the same model, as if trained on another category
        def __getattr__(self, name):
            return getattr(fast_model, name)

        def info(self):
            return {**fast_model.info(), "training": {"category": "disc"}}

    other = TrainedOnDisc()
    with qtbot.waitSignal(window.commands.dataset_loaded, timeout=20000):
        window.commands.open_folder(gui_dataset)
    with qtbot.waitSignal(window.commands.mismatch_found, timeout=10000) as found:
        window.commands.use_model(other, "disc.mdss", "CPU")
    assert "trained on 'disc'" in found.args[0] and "'ring'" in found.args[0]
    assert not window.session.predictions and "Not scored" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.commands.inference_finished, timeout=60000):
        window.commands.start_scoring()  # the user's "Score anyway"
    assert window.session.predictions
