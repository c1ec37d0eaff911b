"""ROI drawn on the RGB panel with the mouse, and "mark as good" on the sample list."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from mdss_app.feedback import FeedbackStore
from mdss_app.panels.roi_editor import EXCLUDE, INCLUDE
from mdss_app.panels.sample_list import COL_SAMPLE, MARKED_GOOD
from tests.gui.conftest import open_and_score

pytestmark = pytest.mark.gui


def _activate(qtbot, win) -> None:
    """Window shortcuts (Esc, Enter, G) reach only the active window (matters under Xvfb)."""
    win.activateWindow()
    win.raise_()
    qtbot.waitUntil(win.isActiveWindow, timeout=5000)


def _viewport_point(panel, x: float, y: float):
    scene = panel.view.mapViewToScene(QPointF(x, y))
    return panel.graphics.mapFromScene(scene)


def _click(qtbot, panel, x: float, y: float, double: bool = False) -> None:
    viewport, pos = panel.graphics.viewport(), _viewport_point(panel, x, y)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
    if double:  # as a mouse sends it: click, double-click, release (pyqtgraph acts on release)
        qtbot.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=pos)
        qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=pos)


@pytest.fixture
def real_scored(qtbot, window, gui_dataset, tiny_model):
    """The window scoring with the real tiny model (it can take an ROI), every sample done."""
    open_and_score(qtbot, window, gui_dataset, tiny_model)
    return window


def test_drawing_a_polygon_sets_the_roi_and_rescores(qtbot, real_scored):
    win = real_scored
    panel, roi = win.image_panel, win.roi_controller
    h, w = panel.shape
    before = dict(win.session.predictions)
    win.menu_actions["draw_roi"].trigger()
    assert roi.drawer.active
    corners = [(0, 0), (w / 2, 0), (w / 2, h)]
    for x, y in corners:
        _click(qtbot, panel, x, y)
    assert len(roi.drawer.points) == 3
    assert win.session.selection is None  # clicks while drawing inspect nothing
    with qtbot.waitSignal(win.commands.inference_finished, timeout=60000) as blocker:
        _click(qtbot, panel, 0, h, double=True)  # the fourth corner closes the polygon
    assert blocker.args == ["done"] and not roi.drawer.active
    model = win.session.model
    assert model.roi is not None and len(model.roi.include[0]) == 4
    np.testing.assert_allclose(model.roi.include[0][1], (0.5, 0.0), atol=0.02)
    assert sorted(win.session.predictions) == sorted(before)
    outside = ~model.roi.mask(h, w)
    for key, prediction in win.session.predictions.items():
        assert not prediction.fused_map[outside].any(), key
        assert prediction.score_rgb <= before[key].score_rgb + 1e-6
    qtbot.waitUntil(lambda: win.session.view.prediction is not None, timeout=10000)
    assert all(o.points(INCLUDE) == 5 for o in roi.outlines)  # 4 corners + closing point
    assert win.menu_actions["clear_roi"].isEnabled()


def test_escape_cancels_and_exclude_then_clear(qtbot, real_scored, tmp_path):
    win = real_scored
    panel, roi = win.image_panel, win.roi_controller
    h, w = panel.shape
    _activate(qtbot, win)
    roi.start(EXCLUDE)
    _click(qtbot, panel, 2, 2)
    qtbot.keyClick(win, Qt.Key.Key_Escape)
    assert not roi.drawer.active and win.session.model.roi is None
    roi.start(EXCLUDE)
    for x, y in [(0, 0), (w / 4, 0), (w / 4, h / 4)]:
        _click(qtbot, panel, x, y)
    with qtbot.waitSignal(win.commands.inference_finished, timeout=60000):
        qtbot.keyClick(win, Qt.Key.Key_Return)
    assert len(win.session.model.roi.exclude) == 1 and not win.session.model.roi.include
    assert all(o.points(EXCLUDE) == 4 for o in roi.outlines)
    saved = tmp_path / "with_roi.mdss"
    with qtbot.waitSignal(roi.save_task.done if roi.save_as(saved) else None, timeout=20000):
        pass
    from mdss_core.api import load_model

    assert load_model(saved, device="cpu").roi == win.session.model.roi
    with qtbot.waitSignal(win.commands.inference_finished, timeout=60000):
        win.menu_actions["clear_roi"].trigger()
    assert win.session.model.roi is None
    assert all(o.points(EXCLUDE) == 0 for o in roi.outlines)


def test_mark_as_good_copies_counts_and_unmark_removes(qtbot, scored_window, tmp_path):
    win = scored_window
    qtbot.waitUntil(lambda: win.session.view.sample is not None, timeout=10000)
    ref = win.session.view.ref
    assert win.feedback.toggle_current() is True
    store: FeedbackStore = win.feedback.store
    category = win.feedback.category
    good = store.good_folder(category)
    rgb, xyz = sorted((good / "rgb").iterdir()), sorted((good / "xyz").iterdir())
    assert [p.name for p in rgb] == ["000.png"] and [p.name for p in xyz] == ["000.tiff"]
    assert rgb[0].read_bytes() == ref.rgb_path.read_bytes() and ref.rgb_path.exists()
    note = json.loads((good / "notes" / "000.json").read_text())
    assert note["source_key"] == ref.key and note["marked_at"]
    row = win.sample_list.model.row_of(ref.key)
    assert win.sample_list.model.index(row, COL_SAMPLE).data().endswith(MARKED_GOOD)
    assert "1 marked good" in win.sample_list.count_label.text()
    assert win.menu_actions["mark_good"].text() == "Unmark as good"
    # The train dialog offers them, and its job adds them to the training split.
    dialog = win.feedback.offer_to(win.commands.show_train_dialog()) or win.commands.train_dialog
    assert dialog.marked_good_check.text() == "Include 1 sample marked as good"
    assert dialog.extra_good_folders() == [str(store.category_folder(category))]
    from mdss_core.api import open_folder, with_extra_good

    merged = with_extra_good(open_folder(win.session.dataset.root), dialog.extra_good_folders())
    assert len(merged) == len(win.session.dataset) + 1
    # G again unmarks: the copies go, the sample's own files stay.
    dialog.hide()
    _activate(qtbot, win)
    qtbot.keyClick(win.sample_list.view, Qt.Key.Key_G)
    assert not list((good / "rgb").iterdir()) and not list((good / "notes").iterdir())
    assert ref.rgb_path.exists()
    assert not win.sample_list.model.index(row, COL_SAMPLE).data().endswith(MARKED_GOOD)
    assert "marked good" not in win.sample_list.count_label.text()
    assert dialog.extra_good_folders() == []
