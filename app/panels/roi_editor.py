"""Region of interest in the 2D views: draw a polygon on the RGB panel, outline it everywhere.

:class:`PolygonDrawer` takes the RGB panel's clicks while active (click the corners; double-click
or Enter closes the polygon, Esc cancels). :func:`roi_outline` turns the model's ROI (normalised
0..1) into curve points for a view of any size. :class:`RoiController` owns the Inspect menu's
ROI actions: a closed polygon becomes the model's new ROI (``api.with_roi``: same networks and
calibration), the folder is re-scored in the background, and the user is offered to save the
model (atomic, in the workspace by default, never over a file without asking).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QMessageBox

from mdss_app.panels.image_view import ImageView2D
from mdss_app.settings import free_path, workspace
from mdss_app.workers import Task
from mdss_core import api

if TYPE_CHECKING:
    from mdss_app.main_window import MainWindow

ROI_COLOUR = "#c77dff"  # apart from selection (cyan), threshold (orange) and GT (green)
INCLUDE, EXCLUDE = "include", "exclude"
MIN_STEP_PX = 1.0  # a double-click's second click lands on its first: not a new corner


def roi_outline(roi: api.Roi | None, shape: tuple[int, int] | None, kind: str) -> np.ndarray:
    """``(N, 2)`` x/y points of ``roi``'s ``kind`` polygons in a view of ``shape`` (rows,
    cols), each closed, separated by NaN rows (a curve with ``connect="finite"``)."""
    if roi is None or shape is None:
        return np.zeros((0, 2))
    scale = np.array([shape[1], shape[0]], float)
    parts = []
    for poly in getattr(roi, kind):
        pts = np.asarray(poly, float) * scale
        parts += [pts, pts[:1], np.full((1, 2), np.nan)]
    return np.vstack(parts) if parts else np.zeros((0, 2))


class RoiOutline:
    """The model's ROI drawn on one 2D view: include polygons solid, exclude ones dashed."""

    def __init__(self, view: ImageView2D) -> None:
        self.view = view
        self.curves = {
            INCLUDE: pg.PlotCurveItem(pen=pg.mkPen(ROI_COLOUR, width=1.8), connect="finite"),
            EXCLUDE: pg.PlotCurveItem(
                pen=pg.mkPen(ROI_COLOUR, width=1.8, style=Qt.PenStyle.DashLine), connect="finite"
            ),
        }
        for curve in self.curves.values():
            curve.setZValue(18)
            view.view.addItem(curve, ignoreBounds=True)

    def show(self, roi: api.Roi | None, shape: tuple[int, int] | None = None) -> None:
        for kind, curve in self.curves.items():
            points = roi_outline(roi, shape or self.view.shape, kind)
            curve.setData(points[:, 0], points[:, 1], connect="finite")

    def points(self, kind: str = INCLUDE) -> int:
        """How many points the outline holds now (tests)."""
        x, _ = self.curves[kind].getData()
        return 0 if x is None else int(np.isfinite(x).sum())


class PolygonDrawer(QObject):
    """Collects a polygon's corners from clicks on ``view`` while :meth:`start` is active."""

    finished = Signal(str, list)  # kind, [(x, y) normalised 0..1, …]
    cancelled = Signal()

    def __init__(self, view: ImageView2D) -> None:
        super().__init__(view)
        self.view = view
        self.kind = ""
        self.points: list[tuple[float, float]] = []  # image coordinates (col, row units)
        self.curve = pg.PlotCurveItem(
            pen=pg.mkPen(ROI_COLOUR, width=1.6, style=Qt.PenStyle.DotLine)
        )
        self.curve.setZValue(40)
        view.view.addItem(self.curve, ignoreBounds=True)
        view.click_filter = self._on_click
        view.graphics.scene().sigMouseMoved.connect(self._on_move)
        self.keys = [
            QShortcut(QKeySequence(key), view.window(), activated=slot)
            for key, slot in (("Return", self.finish), ("Enter", self.finish), ("Esc", self.cancel))
        ]
        self._enable_keys(False)

    @property
    def active(self) -> bool:
        return bool(self.kind)

    def start(self, kind: str = INCLUDE) -> None:
        self.kind, self.points = kind, []
        self._draw()
        self._enable_keys(True)
        self.view.setCursor(Qt.CursorShape.CrossCursor)

    def add_point(self, x: float, y: float) -> None:
        """A corner at image coordinates ``(x, y)`` (column, row units)."""
        if self.points and np.hypot(x - self.points[-1][0], y - self.points[-1][1]) < MIN_STEP_PX:
            return
        self.points.append((float(x), float(y)))
        self._draw()

    def finish(self) -> None:
        """Close the polygon and hand it on (normalised); fewer than 3 corners cancels."""
        if not self.active:
            return
        kind, points, shape = self.kind, self.points, self.view.shape
        self._stop()
        if len(points) < 3 or shape is None:
            self.cancelled.emit()
            return
        h, w = shape
        clipped = [(min(max(x / w, 0.0), 1.0), min(max(y / h, 0.0), 1.0)) for x, y in points]
        self.finished.emit(kind, clipped)

    def cancel(self) -> None:
        if self.active:
            self._stop()
            self.cancelled.emit()

    def _stop(self) -> None:
        self.kind, self.points = "", []
        self._draw()
        self._enable_keys(False)
        self.view.unsetCursor()

    def _enable_keys(self, on: bool) -> None:
        for key in self.keys:
            key.setEnabled(on)

    def _on_click(self, event) -> bool:  # pyqtgraph MouseClickEvent; True: taken
        if not self.active or event.button() != Qt.MouseButton.LeftButton:
            return False
        event.accept()
        point = self._image_point(event.scenePos())
        if point is not None:
            self.add_point(*point)
        if event.double():
            self.finish()
        return True

    def _on_move(self, scene_pos: QPointF) -> None:
        if self.active and self.points:
            self._draw(self._image_point(scene_pos))

    def _image_point(self, scene_pos: QPointF) -> tuple[float, float] | None:
        if self.view.shape is None:
            return None
        point = self.view.view.mapSceneToView(scene_pos)
        h, w = self.view.shape
        return min(max(point.x(), 0.0), w), min(max(point.y(), 0.0), h)

    def _draw(self, cursor: tuple[float, float] | None = None) -> None:
        pts = list(self.points) + ([cursor] if cursor is not None else [])
        if len(pts) > 2:
            pts.append(pts[0])
        xy = np.array(pts, float).reshape(-1, 2)
        self.curve.setData(xy[:, 0], xy[:, 1])


class RoiController(QObject):
    """The ROI actions of the Inspect menu and what they do to the model and the views."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window, self.session = window, window.session
        self.drawer = PolygonDrawer(window.image_panel)
        self.drawer.finished.connect(self._on_polygon)
        self.drawer.cancelled.connect(lambda: window.notify("ROI drawing cancelled"))
        self.outlines = [RoiOutline(view) for view in window.views_2d]
        self.unsaved = False  # the model's ROI differs from its file's
        self.save_task: Task | None = None
        self.session.events.model.connect(lambda _m: self.show_outline())
        self.session.events.view.connect(lambda _v: self.show_outline())
        self.actions = self._build_actions()
        self.update_actions()

    def _build_actions(self) -> dict[str, QAction]:
        specs = {
            "draw_roi": ("Draw &ROI polygon", "Ctrl+R", lambda: self.start(INCLUDE),
                         "Click the corners on the RGB image; double-click or Enter closes it,"
                         " Esc cancels. Outside the ROI nothing is scored."),
            "exclude_roi": ("E&xclude area from ROI", None, lambda: self.start(EXCLUDE),
                            "Draw a polygon the model ignores (a fixture, a part edge)"),
            "clear_roi": ("C&lear ROI", None, self.clear, "Score the whole image again"),
            "save_model": ("&Save model as…", "Ctrl+Shift+S", self.save_as,
                           "Write the model with its ROI to a new file"),
        }  # fmt: skip
        actions = {}
        for name, (text, key, slot, tip) in specs.items():
            action = QAction(text, self.window)
            if key:
                action.setShortcut(QKeySequence(key))
            action.setStatusTip(tip)
            action.setToolTip(tip)
            action.triggered.connect(slot)
            actions[name] = action
        self.session.events.model.connect(lambda _m: self.update_actions())
        return actions

    def update_actions(self) -> None:
        model = self.session.model
        can = model is not None and hasattr(model, "with_roi")
        for name in ("draw_roi", "exclude_roi", "save_model"):
            self.actions[name].setEnabled(can)
        self.actions["clear_roi"].setEnabled(can and getattr(model, "roi", None) is not None)

    def show_outline(self) -> None:
        roi = getattr(self.session.model, "roi", None)
        sample = self.session.view.sample  # the views may not have taken its image yet
        for outline in self.outlines:
            outline.show(roi, None if sample is None else sample.shape)

    # ----- editing -----------------------------------------------------------------------------
    def start(self, kind: str = INCLUDE) -> None:
        if self.session.model is None or self.window.image_panel.shape is None:
            self.window.show_error("Region of interest", "open a model and a sample first")
            return
        self.drawer.start(kind)
        what = "the region to inspect" if kind == INCLUDE else "an area to ignore"
        self.window.notify(
            f"Click the corners of {what} on the RGB image; double-click or Enter closes it, "
            "Esc cancels",
            30000,
        )

    def _on_polygon(self, kind: str, points: list[tuple[float, float]]) -> None:
        current = getattr(self.session.model, "roi", None)
        include = list(current.include) if current else []
        exclude = list(current.exclude) if current else []
        (include if kind == INCLUDE else exclude).append(points)
        try:
            roi = api.make_roi(include, exclude)
        except api.MDSSError as exc:
            self.window.show_error("Region of interest", str(exc))
            return
        self.apply(roi)

    def clear(self) -> None:
        self.apply(None)

    def apply(self, roi: api.Roi | None) -> None:
        """Use the model with ``roi`` from now on and re-score the folder in the background."""
        model, session = self.session.model, self.session
        if model is None or not hasattr(model, "with_roi"):
            self.window.show_error("Region of interest", "this model cannot take an ROI")
            return
        commands = self.window.commands
        commands.use_model(api.with_roi(model, roi), session.model_path, session.device_text)
        self.unsaved = True
        text = "whole image" if roi is None else roi.describe()
        self.window.notify(f"ROI: {text} · re-scoring · Model ▸ Save model as… keeps it", 30000)
        if self.window.interactive:
            self._offer_save()

    def _offer_save(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Region of interest",
            "The ROI is applied and the folder is being re-scored.\n"
            "Save the model with this ROI to a new file?",
            parent=self.window,
        )
        save = box.addButton("Save model as…", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Later", QMessageBox.ButtonRole.RejectRole)
        box.buttonClicked.connect(lambda button: self.save_as() if button is save else None)
        box.open()  # not blocking: the re-scoring goes on

    # ----- saving ------------------------------------------------------------------------------
    def default_path(self) -> Path:
        """A new file in the workspace's models folder: never the one the model came from."""
        model = self.session.model
        stem = Path(self.session.model_path).stem or getattr(model, "name", "model")
        suffix = "-roi" if getattr(model, "roi", None) is not None else ""
        return free_path(workspace() / "models", f"{stem}{suffix}", api.MODEL_SUFFIX)

    def save_as(self, path: str | Path | None = None) -> Task | None:
        """Write the model (with its ROI) atomically; without ``path`` ask where, and the
        file dialog asks before it replaces a file."""
        model = self.session.model
        if model is None:
            self.window.show_error("Save model", "open or train a model first")
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(
                self.window, "Save model as", str(self.default_path()),
                f"mdss model (*{api.MODEL_SUFFIX})",
            )  # fmt: skip
            if not chosen:
                return None
            path = chosen if Path(chosen).suffix else chosen + api.MODEL_SUFFIX
        task = Task("save model", lambda _ctx, p=str(path): api.save_model(model, p), self)
        task.done.connect(self._on_saved)
        task.failed.connect(lambda message: self.window.show_error("Save model", message))
        self.save_task = task
        return self.window.commands.run(task, "Saving model")

    def _on_saved(self, path: Path) -> None:
        self.unsaved = False
        self.session.model_path = str(path)
        self.window.settings.last_model = str(path)
        self.window.notify(f"Saved model → {path}", 15000)
