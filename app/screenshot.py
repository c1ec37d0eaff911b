"""``--screenshot``: wait until the window shows a scored sample with a defect inspected, then
write a PNG of the whole window with the GL (VTK) view composited in.

A plain widget grab shows garbage where OpenGL draws, so the 3D view is read back through
vtkWindowToImageFilter and painted over its place in the window grab.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QPoint, QRect, QTimer
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QApplication

from mdss_app.main_window import MainWindow
from mdss_app.panels.sample_list import COL_FUSED

POLL_MS = 250
REPORT_EVERY_S = 30.0  # long waits (e.g. training the demo model) say what they wait for


def grab_window(window: MainWindow) -> QImage:
    """The whole window as an image, 3D view included."""
    image = window.grab().toImage()
    panel = window.cloud_panel
    frame = panel.grab_frame()
    if frame is not None and panel.vtk_widget is not None and panel.vtk_widget.isVisible():
        widget = panel.vtk_widget
        top_left = widget.mapTo(window, QPoint(0, 0))
        ratio = image.devicePixelRatio() or 1.0
        target = QRect(top_left, widget.size())
        painter = QPainter(image)
        painter.drawImage(
            target, frame.scaled(round(widget.width() * ratio), round(widget.height() * ratio))
        )
        painter.end()
    return image


def save_screenshot(window: MainWindow, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not grab_window(window).save(str(path), "PNG"):
        raise OSError(f"{path}: could not write the screenshot")
    return path


class ScreenshotDirector(QObject):
    """Steps: wait for scores (and metrics) → select the top sample → inspect its strongest
    region → let the 3D camera arrive → save → quit with an exit code."""

    def __init__(self, window: MainWindow, path: str | Path, timeout_s: float = 1200.0) -> None:
        super().__init__(window)
        self.window = window
        self.path = Path(path)
        self.deadline = time.monotonic() + timeout_s
        self.state = "wait-scores"
        self._settle_until = 0.0
        self._next_report = time.monotonic() + REPORT_EVERY_S
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._tick)
        # Any error shown (folder, model, a sample that fails to load, scoring) means the window
        # will not reach the state to capture: stop at once instead of waiting for the timeout.
        self.error = window.last_error
        window.error_shown.connect(self._on_error)

    def _on_error(self, message: str) -> None:
        if not self.error:
            self.error = message

    def start(self) -> None:
        self._timer.start()

    def _finish(self, code: int, message: str = "") -> None:
        self._timer.stop()
        if message:
            print(f"mdss-gui: {message}", file=sys.stderr)
        QApplication.instance().exit(code)

    def _tick(self) -> None:
        w = self.window
        if time.monotonic() > self.deadline:
            self._save_and_quit(1, "screenshot timed out before the window was ready")
            return
        if time.monotonic() >= self._next_report:
            self._next_report = time.monotonic() + REPORT_EVERY_S
            if w.task_status.isVisible():
                print(f"mdss-gui: waiting: {w.task_status.label.text()}", file=sys.stderr)
        if self.error:
            self._save_and_quit(1, f"stopped: {self.error}")
            return
        session, commands = w.session, w.commands
        if self.state == "wait-scores":
            busy = commands.inference_running or commands.metrics_running
            if busy or session.model is None or not session.predictions:
                return
            w.sample_list.sort_by(COL_FUSED, descending=True)
            w.sample_list.select_key(session.top_sample())
            self.state = "wait-sample"
        elif self.state == "wait-sample":
            view = session.view
            if view.regions is None or view.key != session.top_sample():
                return
            self._inspect_strongest_region()
            self._settle_until = time.monotonic() + 1.0
            self.state = "settle"
        elif self.state == "settle" and time.monotonic() >= self._settle_until:
            self._save_and_quit(0)

    def _inspect_strongest_region(self) -> None:
        w = self.window
        view = w.session.view
        values = view.prediction.fused_map
        if view.regions:
            region = max(view.regions, key=lambda r: r.max_fused)
            values = values * view.regions.mask(region)
        # No region above the threshold: inspect the strongest pixel instead (local scores).
        row, col = divmod(int(values.argmax()), values.shape[1])
        w.inspect_pixel(row, col)
        w.hover(row, col)  # crosshair on the defect in every panel

    def _save_and_quit(self, code: int, message: str = "") -> None:
        try:
            saved = save_screenshot(self.window, self.path)
            print(f"mdss-gui: screenshot written to {saved}")
        except OSError as exc:
            self._finish(1, str(exc))
            return
        self._finish(code, message)
