"""Views on a real line: list colours follow the threshold, a data switch leaves nothing stale,
the window fits small screens, the help menu, and the 3D camera's math (no GL needed)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QKeySequence

from mdss_app import style
from mdss_app.panels.sample_list import COL_FUSED

pytestmark = pytest.mark.gui


# ----- list colours ------------------------------------------------------------------------
def _fused_colour(win, key: str) -> str:
    """The colour the sample list paints ``key``'s fused score in (through the sorted proxy)."""
    source = win.sample_list.model.index(win.sample_list.model.row_of(key), COL_FUSED)
    index = win.sample_list.proxy.mapFromSource(source)
    return index.data(Qt.ItemDataRole.ForegroundRole).color().name()


def test_list_colours_follow_the_image_threshold(qtbot, scored_window):
    win = scored_window
    key, prediction = next(iter(win.session.predictions.items()))
    spin = win.threshold_panel.image_spin
    changed = []
    win.sample_list.model.dataChanged.connect(lambda *_: changed.append(1))
    spin.setValue(prediction.score_fused * 0.5)  # the user lowers the image threshold
    assert win.session.thresholds.image == pytest.approx(spin.value())
    assert _fused_colour(win, key) == QColor(style.ANOMALY).name()
    assert changed, "the list was not told to repaint"
    spin.setValue(prediction.score_fused * 2.0)  # …and raises it above the sample's score
    assert _fused_colour(win, key) == QColor(style.NORMAL).name()
    view = win.sample_list.view
    shown = view.model().index(0, COL_FUSED)
    assert shown.data(Qt.ItemDataRole.ForegroundRole) is not None  # scored rows are coloured


# ----- data switch -------------------------------------------------------------------------
def _copy_of(dataset, tmp_path):
    """The same category in another folder: every key repeats, every path differs."""
    copy = tmp_path / "second" / dataset.name
    shutil.copytree(dataset, copy)
    return copy


def test_switching_data_resets_sample_zoom_crosshair_and_selection(
    qtbot, scored_window, gui_dataset, tmp_path
):
    win = scored_window
    first = win.session.view.sample
    h, w = first.shape
    row, col = np.unravel_index(int(np.argmax(win.session.view.prediction.fused_map)), (h, w))
    win.inspect_pixel(int(row), int(col))
    win.hover(int(row), int(col))
    win.image_panel.view.setRange(xRange=(2, w // 3), yRange=(2, h // 3), padding=0)
    assert win.session.selection is not None and win.image_panel.cross_v.isVisible()

    copy = _copy_of(gui_dataset, tmp_path)
    with qtbot.waitSignal(win.commands.inference_finished, timeout=30000):
        win.commands.open_folder(copy)
    qtbot.waitUntil(lambda: win.session.view.sample is not None, timeout=10000)
    shown = win.session.view.sample
    assert shown.ref.key == first.ref.key  # the same key as before…
    assert shown.ref.rgb_path.is_relative_to(copy)  # …but the new folder's sample
    assert win.session.view.prediction is not None
    assert win.session.selection is None
    for panel in win.views_2d:
        assert not panel.cross_v.isVisible() and not panel.cross_h.isVisible()
        (x0, x1), (y0, y1) = panel.view.viewRange()
        assert x0 <= 0 and x1 >= w or y0 <= 0 and y1 >= h  # the whole image, not the zoom
    assert win.status_fields.pixel_label.text() == ""


def test_a_late_result_of_the_previous_folder_is_ignored(scored_window, gui_dataset, tmp_path):
    from mdss_core.api import open_folder

    win = scored_window
    old_ref, old_prediction = win.session.scored_items()[0]
    win.commands.use_dataset(open_folder(str(_copy_of(gui_dataset, tmp_path))))
    win.commands.cancel_scoring()
    win.session.add_scored(old_ref, old_prediction)  # arrives after the switch
    assert old_ref.key not in win.session.predictions


def test_reset_view_shows_the_whole_image_again(scored_window):
    win = scored_window
    h, w = win.session.view.sample.shape
    win.image_panel.view.setRange(xRange=(2, w // 4), yRange=(2, h // 4), padding=0)
    win.menu_actions["reset_view"].trigger()
    for panel in win.views_2d:
        (x0, x1), (y0, y1) = panel.view.viewRange()
        assert x0 <= 0 and x1 >= w or y0 <= 0 and y1 >= h
    assert win.menu_actions["reset_view"].shortcut() == QKeySequence("R")


# ----- window size -------------------------------------------------------------------------
def test_initial_geometry_fits_the_available_screen():
    from mdss_app.window_layout import PREFERRED_SIZE, SCREEN_SHARE, initial_geometry

    small = QRect(0, 24, 1600, 976)  # a 1600×1000 screen less a top bar
    rect = initial_geometry(small)
    assert small.contains(rect)
    assert rect.width() <= SCREEN_SHARE * small.width() + 1
    assert rect.height() <= SCREEN_SHARE * small.height() + 1
    assert abs(rect.center().x() - small.center().x()) <= 1
    assert abs(rect.center().y() - small.center().y()) <= 1
    assert initial_geometry(QRect(0, 0, 3840, 2160)).size() == PREFERRED_SIZE


def test_window_fits_a_small_screen_with_usable_panels(qtbot, settings, monkeypatch):
    from mdss_app import main_window
    from mdss_app.main_window import MainWindow

    screen = QRect(0, 0, 1280, 800)
    monkeypatch.setattr(main_window, "available_geometry", lambda _widget: screen)
    win = MainWindow(settings=settings, enable_vtk=False, interactive=False)
    qtbot.addWidget(win)
    assert screen.contains(win.geometry())
    assert win.size().width() <= 1280 * 0.92 + 1 and win.size().height() <= 800 * 0.92 + 1
    win.show()
    qtbot.waitExposed(win)
    win.default_layout()
    qtbot.wait(50)
    for panel in (win.image_panel, win.cloud_panel, win.fused_panel):
        assert panel.width() >= 150 and panel.height() >= 200, panel.objectName()
    assert win.samples_dock.width() >= 180
    # The inspector is as wide as its contents (only its height scrolls).
    assert win.inspector_dock.width() >= win.inspector.minimumSizeHint().width()


# ----- help --------------------------------------------------------------------------------
def test_help_menu_has_quick_start_shortcuts_and_about(window):
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    texts = [a.text() for a in help_menu.actions() if not a.isSeparator()]
    assert texts == ["&Quick start", "&Keyboard shortcuts", "&About"]


def test_quick_start_walks_through_the_main_steps(window):
    from mdss_app.dialogs.help_dialogs import QUICK_START, quick_start_dialog

    dialog = quick_start_dialog(window)
    steps = QUICK_START.count("<li>")
    assert 6 <= steps <= 10
    for word in ("Open a folder", "Train", "Click a defect", "Threshold", "Export"):
        assert word in QUICK_START
    assert dialog.windowTitle() == "Quick start"


def _table_rows(dialog) -> list[tuple[str, str]]:
    table = dialog.table
    return [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]


def test_shortcuts_dialog_lists_the_real_shortcuts(window):
    from mdss_app.dialogs.help_dialogs import shortcuts_dialog
    from mdss_app.menus import WIDGET_KEYS

    native = QKeySequence.SequenceFormat.NativeText
    rows = _table_rows(shortcuts_dialog(window, WIDGET_KEYS))
    expected = {
        (a.shortcut().toString(native), a.text().replace("&", "").rstrip("…").strip())
        for a in window.menu_actions.values()
        if not a.shortcut().isEmpty()
    }
    assert expected <= set(rows)
    assert ("R", "Reset view") in rows and ("Ctrl+E", "Export results") in rows
    assert ("A", "Previous sample") in rows and ("D", "Next sample") in rows
    assert ("Up, Down", "Previous / next sample (sample list)") in rows
    # Generated, not written down: a changed key shows up at once.
    window.menu_actions["reset_view"].setShortcut(QKeySequence("Ctrl+0"))
    rows = _table_rows(shortcuts_dialog(window))
    assert ("Ctrl+0", "Reset view") in rows and ("R", "Reset view") not in rows


# ----- 3D camera math ----------------------------------------------------------------------
def _grid_cloud(xyz_of):
    from mdss_app.panels.cloud_data import build_cloud

    rows, cols = np.mgrid[0:20, 0:30].astype(np.float32)
    return build_cloud(np.dstack(xyz_of(rows, cols)).astype(np.float32))


def _screen_axes(direction, up):
    right = np.cross(direction, up)
    return right, up


@pytest.mark.parametrize(
    "xyz_of",
    [
        # a sensor at the origin: x along columns, y along rows, z forward (MVTec 3D-AD)
        lambda r, c: ((c - 15) * 1e-3, (r - 10) * 1e-3, 0.6 + 0 * r),
        # axes turned and mirrored: the view must still show the image's orientation
        lambda r, c: (0.2 + 0 * r, -c * 1e-3, r * 2e-3),
        lambda r, c: (-(c - 15) * 1e-3, (r - 10) * 1e-3, 0.6 + 1e-4 * r),
    ],
)
def test_sensor_view_shows_the_cloud_like_its_image(xyz_of):
    from mdss_app.panels.cloud_data import sensor_view

    cloud = _grid_cloud(xyz_of)
    direction, up = sensor_view(cloud)
    assert np.isclose(np.linalg.norm(direction), 1) and np.isclose(np.linalg.norm(up), 1)
    assert abs(direction @ up) < 1e-9
    right, up = _screen_axes(direction, up)
    first, last_col, last_row = (
        cloud.points[cloud.point_at_pixel(*p)] for p in ((0, 0), (0, 29), (19, 0))
    )
    assert (last_col - first) @ right > 0  # column 0 on the left
    assert abs((last_col - first) @ up) < 1e-3 * np.linalg.norm(last_col - first)  # level
    assert (last_row - first) @ up < 0  # row 0 at the top


def test_sensor_view_looks_along_the_mean_ray_of_a_sensor_at_the_origin():
    from mdss_app.panels.cloud_data import sensor_view

    cloud = _grid_cloud(lambda r, c: (0.05 + c * 1e-3, r * 1e-3, 0.6 + 0 * r))
    direction, _ = sensor_view(cloud)
    mean_ray = cloud.points.mean(axis=0) / np.linalg.norm(cloud.points.mean(axis=0))
    np.testing.assert_allclose(direction, mean_ray, atol=1e-9)


def test_a_clicked_region_fills_a_third_of_the_view():
    from mdss_app.panels.cloud_panel import REGION_SHARE, fit_distance, framing_distance

    radius, angle = 0.01, 30.0
    distance = framing_distance(radius, angle, aspect=2.0)  # wide view: the height limits
    half_height = distance * np.tan(np.radians(angle) / 2)
    assert radius / half_height == pytest.approx(REGION_SHARE)
    narrow = framing_distance(radius, angle, aspect=0.5)  # narrow view: the width limits
    assert radius / (narrow * np.tan(np.radians(angle) / 2) * 0.5) == pytest.approx(REGION_SHARE)

    points = np.array([[-0.1, -0.05, 0.0], [0.1, 0.05, 0.0]])
    direction, up = np.array([0.0, 0.0, 1.0]), np.array([0.0, -1.0, 0.0])
    d = fit_distance(points, np.zeros(3), direction, up, angle, aspect=1.0, margin=1.0)
    assert 0.1 / (d * np.tan(np.radians(angle) / 2)) == pytest.approx(1.0)


def test_colour_bar_title_says_what_the_colour_is():
    from mdss_app.panels.cloud_panel import BAR_TITLE_CHARS, bar_title

    assert bar_title("|sdf|").startswith("3D score")
    assert "σ" not in bar_title("|sdf| (σ)")  # VTK's font has no σ
    # VTK clips a title wider than the strip: long captions are wrapped into short lines.
    title = bar_title("|sdf| & normals (σ)")
    assert title.splitlines() == ["3D score", "|sdf| &", "normals", "(s.d.)"]
    assert max(len(line) for line in bar_title("a much longer caption (σ)").splitlines()) <= (
        BAR_TITLE_CHARS
    )
