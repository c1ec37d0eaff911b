"""Sizes and docks of the main window: a first size that fits the screen, dock sizes in
proportion to the window, and docks whose tall contents scroll instead of growing the window."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QDockWidget, QFrame, QScrollArea, QWidget

if TYPE_CHECKING:
    from mdss_app.main_window import MainWindow

PREFERRED_SIZE = QSize(1680, 1020)
SCREEN_SHARE = 0.92  # of the available screen: the frame and the desktop's edges stay visible
DOCK_FEATURES = (
    QDockWidget.DockWidgetFeature.DockWidgetMovable
    | QDockWidget.DockWidgetFeature.DockWidgetFloatable
    | QDockWidget.DockWidgetFeature.DockWidgetClosable
)


def initial_geometry(available: QRect, preferred: QSize = PREFERRED_SIZE) -> QRect:
    """The first window rectangle: ``preferred``, shrunk to fit ``SCREEN_SHARE`` of the
    available screen area (``QScreen.availableGeometry()``), centred on it."""
    width = min(preferred.width(), int(available.width() * SCREEN_SHARE))
    height = min(preferred.height(), int(available.height() * SCREEN_SHARE))
    rect = QRect(0, 0, width, height)
    rect.moveCenter(available.center())
    return rect


def available_geometry(widget: QWidget) -> QRect:
    """The screen area ``widget`` may use (less task bars); the preferred size without one."""
    screen = widget.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return QRect(0, 0, PREFERRED_SIZE.width(), PREFERRED_SIZE.height())
    return screen.availableGeometry()


def vertical_scroller(widget: QWidget) -> QScrollArea:
    """``widget`` in a scroll area that scrolls its height only: as wide as it needs, as short
    as the window allows."""
    holder = QScrollArea()
    holder.setWidgetResizable(True)
    holder.setFrameShape(QFrame.Shape.NoFrame)
    holder.setWidget(widget)
    holder.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    bar = holder.verticalScrollBar().sizeHint().width()
    holder.setMinimumWidth(widget.minimumSizeHint().width() + bar)
    return holder


def make_dock(
    window: MainWindow,
    title: str,
    name: str,
    widget: QWidget,
    area: Qt.DockWidgetArea,
    scroll: bool = False,
) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(name)
    dock.setWidget(vertical_scroller(widget) if scroll else widget)
    dock.setFeatures(DOCK_FEATURES)
    window.addDockWidget(area, dock)
    return dock


def default_layout(window: MainWindow) -> None:
    """Dock sizes in proportion to the window, with floors that keep each dock usable on a
    1280×800 screen (docks only size once they are shown); the three views share the rest."""
    horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
    width, height = window.width(), window.height()
    window.resizeDocks([window.samples_dock], [max(240, round(width * 0.22))], horizontal)
    window.resizeDocks([window.inspector_dock], [max(270, round(width * 0.19))], horizontal)
    window.resizeDocks([window.metrics_dock], [max(170, round(height * 0.28))], vertical)
    right = [round(height * 0.46), round(height * 0.37)]
    window.resizeDocks([window.inspector_dock, window.threshold_dock], right, vertical)
    sizes = window.panel_splitter.sizes()
    if sum(sizes):
        window.panel_splitter.setSizes([sum(sizes) // 3] * 3)
