"""Pieces of the GUI that need no window: VTK data building, overlays, workers, ETA."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mdss_app.dialogs.train_dialog import EtaTracker, format_duration
from mdss_app.panels.cloud_data import build_cloud, set_scores
from mdss_app.panels.overlays import display_ceiling, mask_outline, overlay_lut
from mdss_core.errors import DataError
from mdss_core.progress import Progress


def organized_cloud(h: int = 6, w: int = 8) -> np.ndarray:
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    xyz = np.stack([cols * 1e-3, rows * 1e-3, 0.65 + 0 * rows], axis=2)
    xyz[0, 0] = 0  # a missing point
    return xyz


def test_cloud_keeps_valid_object_points_and_maps_them_back_to_pixels():
    xyz = organized_cloud()
    keep = np.ones(xyz.shape[:2], bool)
    keep[:, 6:] = False  # not object
    scores = np.arange(48, dtype=np.float32).reshape(6, 8)
    cloud = build_cloud(xyz, keep, scores, np.zeros((6, 8, 3), np.uint8))
    assert cloud.n_points == 6 * 6 - 1
    assert cloud.polydata.GetNumberOfPoints() == cloud.n_points
    assert cloud.polydata.GetNumberOfVerts() == cloud.n_points
    assert cloud.point_at_pixel(0, 0) == -1 and cloud.point_at_pixel(2, 7) == -1
    for row, col in [(1, 1), (5, 5), (0, 1)]:
        point = cloud.point_at_pixel(row, col)
        assert cloud.pixel_of_point(point) == (row, col)
        np.testing.assert_allclose(cloud.points[point], xyz[row, col])
        score = cloud.polydata.GetPointData().GetArray("score").GetValue(point)
        assert score == scores[row, col]


def test_cloud_scores_can_be_replaced_and_region_points_selected():
    xyz = organized_cloud()
    cloud = build_cloud(xyz)
    set_scores(cloud, np.full((6, 8), 2.5, np.float32))
    values = cloud.polydata.GetPointData().GetArray("score")
    assert {values.GetValue(i) for i in range(cloud.n_points)} == {2.5}
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:5] = True
    mask[0, 0] = True  # no point there
    points = cloud.points_in_mask(mask)
    assert len(points) == 4
    pixels = {(round(y * 1e3), round(x * 1e3)) for x, y, _ in points}
    assert pixels == {(2, 3), (2, 4), (3, 3), (3, 4)}


def test_mask_outline_follows_each_blob_separately():
    mask = np.zeros((20, 20), bool)
    mask[2:6, 3:9] = True
    mask[12:15, 12:14] = True
    x, y, connect = mask_outline(mask)
    assert len(x) == len(y) == len(connect)
    assert (~connect).sum() == 2  # one break per blob
    ends = np.flatnonzero(~connect)
    boxes = set()
    for start, stop in zip([0, ends[0] + 1], ends + 1, strict=True):
        bx, by = x[start:stop], y[start:stop]
        assert bx[0] == bx[-1] and by[0] == by[-1]  # closed
        boxes.add((bx.min(), bx.max(), by.min(), by.max()))
    assert boxes == {(3.5, 8.5, 2.5, 5.5), (12.5, 13.5, 12.5, 14.5)}
    assert mask_outline(np.zeros((4, 4), bool))[0].size == 0


def test_overlay_lut_fades_low_scores_and_ceiling_centres_threshold():
    lut = overlay_lut(size=100, fade=0.2)
    assert lut.shape == (100, 4)
    assert lut[0, 3] == 0 and lut[20:, 3].min() == 255
    assert np.all(np.diff(lut[:21, 3].astype(int)) >= 0)
    assert display_ceiling(0.7) == pytest.approx(1.4)
    assert display_ceiling(float("nan"), [np.full((3, 3), 5.0)]) == pytest.approx(5.0)


def test_the_views_and_the_exported_overlays_share_one_colour_map():
    from mdss_app.panels.overlays import score_colormap
    from mdss_core.api import fade_alpha, score_colours

    assert np.array_equal(overlay_lut()[:, :3], score_colours())
    assert np.array_equal(overlay_lut()[:, 3], (fade_alpha() * 255).astype(np.uint8))
    table = score_colormap().getLookupTable(nPts=256, alpha=False, mode="byte")
    assert np.array_equal(table[:, :3], score_colours())
    # dark for normal scores, bright for anomalous ones (inferno)
    assert score_colours()[0].sum() < 30 and score_colours()[-1].sum() > 600


def test_eta_uses_the_pace_of_the_current_stage():
    now = [0.0]
    eta = EtaTracker(lambda: now[0])
    assert np.isnan(eta.update(Progress("rgb", 0, 100)))
    now[0] = 10.0
    assert eta.update(Progress("rgb", 10, 100)) == pytest.approx(90.0)
    now[0] = 11.0
    assert np.isnan(eta.update(Progress("geometry", 1, 50)))  # a new stage restarts the clock
    assert format_duration(75) == "1 min 15 s" and format_duration(float("nan")) == "—"


def test_task_reports_done_failed_and_cancelled(qtbot):
    from mdss_app.workers import Task

    def work(ctx):
        for i in range(3):
            ctx.emit(i)
            ctx.progress(Progress("work", i + 1, 3))
        return "result"

    task = Task("ok", work)
    items = []
    task.item.connect(items.append)
    with qtbot.waitSignal(task.finished, timeout=5000):
        task.start()
    assert task.outcome == "done" and task.result == "result" and items == [0, 1, 2]

    bad = Task("bad", lambda ctx: (_ for _ in ()).throw(DataError("x.tiff", "broken")))
    with qtbot.waitSignal(bad.failed, timeout=5000) as failed:
        bad.start()
    assert failed.args == ["x.tiff: broken"]

    gate = threading.Event()

    def wait_for_cancel(ctx):
        gate.set()
        ctx.cancel.wait(5)
        from mdss_core.progress import check_cancel

        check_cancel(ctx.cancel, "waiting")

    slow = Task("slow", wait_for_cancel)
    with qtbot.waitSignal(slow.cancelled, timeout=5000):
        slow.start()
        assert gate.wait(5)
        slow.cancel()
    assert slow.outcome == "cancelled"
    qtbot.waitUntil(lambda: slow.wait(100))


def test_unexpected_exception_becomes_a_one_line_failure(qtbot):
    from mdss_app.workers import Task

    def boom(ctx):
        raise ValueError("first line\nsecond line")

    task = Task("boom", boom)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        task.start()
    assert failed.args[0] == "unexpected error: ValueError: first line"


def test_the_qt_binding_keeps_none_alive(qapp):
    # PySide6 6.12.0 gave every void method's None back without a reference: on Python < 3.12
    # (None not immortal) the GUI then aborted with "deallocating None" after a few thousand
    # Qt calls (pyproject keeps it out). A binding that does this again fails here, not later.
    import sys

    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QImage, QPainter, QPen

    image = QImage(16, 16, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    pen = QPen()
    before = sys.getrefcount(None)
    for _ in range(500):
        painter.setPen(pen)
        painter.drawLine(QPointF(0, 0), QPointF(5, 5))
    after = sys.getrefcount(None)
    painter.end()
    assert after > before - 500, f"None lost {before - after} references in 1000 void calls"
