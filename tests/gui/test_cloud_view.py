"""The real VTK view (needs a display: run under ``xvfb-run -a``)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from tests.gui.conftest import open_and_score

pytestmark = [pytest.mark.gui, pytest.mark.vtk]


@pytest.fixture
def vtk_window(qtbot, settings, gui_dataset, fast_model):
    from mdss_app.main_window import MainWindow

    win = MainWindow(settings=settings, enable_vtk=None, interactive=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.cloud_panel.ready, timeout=10000)
    open_and_score(qtbot, win, gui_dataset, fast_model)
    return win


def _frame_array(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, image.bytesPerLine() * height)
    rows = data.reshape(height, image.bytesPerLine())[:, : width * 3].reshape(height, width, 3)
    # Copy while ``image`` is alive: the buffer view does not keep the QImage's memory alive.
    return rows.copy()


def test_view_shows_object_points_coloured_by_score(vtk_window):
    win = vtk_window
    panel, prediction, sample = (
        win.cloud_panel,
        win.session.view.prediction,
        win.session.view.sample,
    )
    expected = int((prediction.object_mask & sample.valid_mask).sum())
    assert panel.cloud.n_points == expected
    assert panel.actor.GetVisibility() and panel.scalar_bar.GetVisibility()
    by_score = _frame_array(panel.grab_frame()).astype(int)
    assert by_score.std() > 5  # something was drawn, not a blank window
    panel.set_colour_mode("rgb")
    by_colour = _frame_array(panel.grab_frame()).astype(int)
    assert not panel.scalar_bar.GetVisibility()
    assert np.abs(by_score - by_colour).mean() > 1


def test_picking_a_point_selects_its_region_and_flies_there(qtbot, vtk_window):
    win = vtk_window
    panel = win.cloud_panel
    prediction, sample = win.session.view.prediction, win.session.view.sample
    fused = np.where(prediction.object_mask & sample.valid_mask, prediction.fused_map, -np.inf)
    row, col = np.unravel_index(int(np.argmax(fused)), fused.shape)
    threshold = float(fused[row, col]) * 0.9
    win.session.set_pixel_threshold(threshold)
    qtbot.waitUntil(lambda: win.session.view.regions.threshold == threshold, timeout=5000)
    regions = win.session.view.regions
    region = regions.at(row, col)
    assert region is not None

    renderer = panel.renderer
    renderer.SetWorldPoint(*sample.xyz[row, col].astype(float), 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    with qtbot.waitSignal(win.selection_changed, timeout=5000) as picked:
        pixel = panel.pick_display(round(x), round(y))
    assert pixel is not None
    assert abs(pixel[0] - row) <= 2 and abs(pixel[1] - col) <= 2
    assert picked.args[0].label == regions.at(*pixel).label

    mask = regions.mask(picked.args[0])
    target = sample.xyz[mask & prediction.object_mask].mean(axis=0)
    qtbot.waitUntil(
        lambda: np.linalg.norm(panel.camera_focal_point() - target) < 1e-6, timeout=5000
    )
    shown = mask.ravel()[panel.cloud.pixel_index]
    assert np.array_equal(panel.selected_points, shown)


def test_hover_moves_the_3d_marker(vtk_window):
    win = vtk_window
    cloud = win.cloud_panel.cloud
    row, col = cloud.pixel_of_point(cloud.n_points // 2)
    win.hover(row, col)
    assert win.cloud_panel.marker.GetVisibility()
    np.testing.assert_allclose(
        win.cloud_panel.marker_source.GetCenter(), win.session.view.sample.xyz[row, col], atol=1e-6
    )
    win.hover(-1, -1)
    assert not win.cloud_panel.marker.GetVisibility()


def test_screenshot_composites_the_gl_view(vtk_window, tmp_path):
    from mdss_app.screenshot import save_screenshot

    win = vtk_window
    path = save_screenshot(win, tmp_path / "shot.png")
    shot = _frame_array(QImage(str(path)))
    widget = win.cloud_panel.vtk_widget
    origin = widget.mapTo(win, widget.rect().topLeft())
    crop = shot[origin.y() : origin.y() + widget.height(), origin.x() : origin.x() + widget.width()]
    frame = _frame_array(win.cloud_panel.grab_frame())
    assert crop.shape == frame.shape
    assert np.abs(crop.astype(int) - frame.astype(int)).mean() < 3
