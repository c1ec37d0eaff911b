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


def _display_xy(renderer, point) -> tuple[float, float]:
    renderer.SetWorldPoint(*np.asarray(point, float), 1.0)
    renderer.WorldToDisplay()
    x, y, _ = renderer.GetDisplayPoint()
    return x, y


def test_colour_bar_has_its_own_strip_beside_the_cloud(vtk_window):
    panel = vtk_window.cloud_panel
    cloud_port, bar_port = panel.viewports()
    assert bar_port is not None  # coloured by score: the bar is shown…
    assert cloud_port[2] <= bar_port[0]  # …right of the cloud's viewport, not over it
    assert cloud_port[0] == 0.0 and bar_port[2] == 1.0
    assert panel.scalar_bar.GetTitle().startswith("3D score")
    # Every point of the whole-object view lands inside the cloud's viewport.
    width = panel.vtk_widget.GetRenderWindow().GetSize()[0]
    xs = [_display_xy(panel.renderer, p)[0] for p in panel.cloud.points[::25]]
    assert max(xs) <= cloud_port[2] * width + 1
    panel.set_colour_mode("rgb")  # no score colours, no bar: the cloud takes the whole width
    cloud_port, bar_port = panel.viewports()
    assert bar_port is None and cloud_port[2] == 1.0


def test_camera_starts_along_the_sensor_axis_with_the_image_orientation(vtk_window):
    from mdss_app.panels.cloud_data import sensor_view

    panel = vtk_window.cloud_panel
    panel.reset_camera()
    camera = panel.renderer.GetActiveCamera()
    direction, _ = sensor_view(panel.cloud)
    np.testing.assert_allclose(camera.GetDirectionOfProjection(), direction, atol=1e-6)
    mean_ray = panel.cloud.points.mean(axis=0)
    assert np.dot(camera.GetDirectionOfProjection(), mean_ray / np.linalg.norm(mean_ray)) > 0.99
    # Pixels seen as in the 2D image: a later row is lower, a later column further right.
    cloud = panel.cloud
    rows, cols = np.divmod(cloud.pixel_index, cloud.shape[1])
    top, bottom = cloud.points[rows.argmin()], cloud.points[rows.argmax()]
    left, right = cloud.points[cols.argmin()], cloud.points[cols.argmax()]
    assert _display_xy(panel.renderer, top)[1] > _display_xy(panel.renderer, bottom)[1]
    assert _display_xy(panel.renderer, left)[0] < _display_xy(panel.renderer, right)[0]


def test_a_picked_region_is_framed_with_context_and_r_resets(qtbot, vtk_window):
    from mdss_app.panels.cloud_panel import MIN_CONTEXT, framing_distance

    win = vtk_window
    panel = win.cloud_panel
    home = panel.renderer.GetActiveCamera().GetDistance()
    prediction = win.session.view.prediction
    row, col = np.unravel_index(int(np.argmax(prediction.fused_map)), prediction.fused_map.shape)
    threshold = float(prediction.fused_map[row, col]) * 0.98  # a small region
    win.session.set_pixel_threshold(threshold)
    qtbot.waitUntil(lambda: win.session.view.regions.threshold == threshold, timeout=5000)
    win.inspect_pixel(int(row), int(col))
    qtbot.waitUntil(lambda: panel.selected_points is not None, timeout=5000)
    points = panel.cloud.points[panel.selected_points]
    radius = max(
        np.linalg.norm(points.max(axis=0) - points.min(axis=0)) / 2,
        MIN_CONTEXT * panel.cloud.scale(),
    )
    camera = panel.renderer.GetActiveCamera()
    expected = min(
        home,
        framing_distance(radius, camera.GetViewAngle(), panel.renderer.GetTiledAspectRatio()),
    )
    qtbot.waitUntil(lambda: abs(camera.GetDistance() - expected) < 1e-6 * home, timeout=5000)
    assert camera.GetDistance() < home  # closer than the whole object's view
    # On screen the region keeps context around it: at most about a third of the view.
    xy = np.array([_display_xy(panel.renderer, p) for p in points])
    span = (xy.max(axis=0) - xy.min(axis=0)).max()
    assert span <= 0.45 * min(panel.renderer.GetSize())
    win.menu_actions["reset_view"].trigger()
    assert camera.GetDistance() == pytest.approx(home, rel=1e-6)


def test_switching_data_gives_the_new_sample_a_fresh_camera(
    qtbot, vtk_window, gui_dataset, tmp_path
):
    import shutil

    win = vtk_window
    panel = win.cloud_panel
    camera = panel.renderer.GetActiveCamera()
    home = np.array(camera.GetDirectionOfProjection())
    camera.Azimuth(70)  # the user turned the object…
    camera.Zoom(3.0)  # …and zoomed in
    assert np.dot(camera.GetDirectionOfProjection(), home) < 0.5
    copy = tmp_path / "other" / gui_dataset.name
    shutil.copytree(gui_dataset, copy)
    with qtbot.waitSignal(win.commands.inference_finished, timeout=30000):
        win.commands.open_folder(copy)
    qtbot.waitUntil(lambda: win.session.view.prediction is not None, timeout=10000)
    assert win.session.view.sample.ref.rgb_path.is_relative_to(copy)
    assert panel.cloud.n_points == int(
        (win.session.view.prediction.object_mask & win.session.view.sample.valid_mask).sum()
    )
    np.testing.assert_allclose(camera.GetDirectionOfProjection(), home, atol=1e-6)
