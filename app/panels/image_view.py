"""A 2D image view with an anomaly overlay, colour bar, crosshair and selection outline.

Base of the RGB-heatmap and fused panels. Image space is row-major: x = column, y = row, and
the y axis points down like the image, so a pixel (row, col) covers [col, col+1] × [row, row+1].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QSlider, QVBoxLayout, QWidget

from mdss_app import style
from mdss_app.panels.overlays import mask_outline, overlay_lut, score_colormap
from mdss_app.session import Selection


def panel_title(text: str) -> QLabel:
    """A panel heading that may be clipped, so headers never force the panel wider."""
    label = QLabel(text)
    label.setObjectName("panelTitle")
    label.setToolTip(text)
    label.setMinimumWidth(40)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class ImageView2D(QWidget):
    """Image + overlay + colour bar. Emits pixel coordinates for hover and click."""

    hovered = Signal(int, int)  # row, col; (-1, -1) when the mouse leaves the image
    clicked = Signal(int, int)
    levels_changed = Signal(float, float)

    def __init__(self, title: str, colorbar_label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imagePanel")
        self._shape: tuple[int, int] | None = None
        self._updating_levels = False
        # An editor that takes the clicks while it is active (panels/roi_editor.py): True = taken.
        self.click_filter: Callable[[Any], bool] | None = None

        self.title = panel_title(title)
        self.header = QHBoxLayout()
        self.header.setContentsMargins(8, 4, 8, 4)
        self.header.setSpacing(6)
        self.header.addWidget(self.title, 1)  # the title takes (and may lose) spare width

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setContentsMargins(2, 2, 2, 2)
        self.view = self.graphics.addViewBox(row=0, col=0, lockAspect=True, invertY=True)
        self.view.setMenuEnabled(False)
        self.view.setDefaultPadding(0.01)

        self.base = pg.ImageItem()
        self.overlay = pg.ImageItem()
        self.overlay.setLookupTable(overlay_lut())
        self.overlay.setZValue(5)
        self.view.addItem(self.base)
        self.view.addItem(self.overlay)
        self._add_colorbar(colorbar_label)
        self._add_marks()
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(self.header)
        layout.addWidget(self.graphics, 1)

    def set_caption(self, text: str) -> None:
        """What the colour scale measures (it depends on the model's fusion rule)."""
        self.colorbar.axis.setLabel(text)

    def _add_colorbar(self, colorbar_label: str) -> None:
        self.colorbar = pg.ColorBarItem(
            values=(0.0, 1.0),
            colorMap=score_colormap(),
            label=colorbar_label,
            interactive=True,
            width=12,
            orientation="horizontal",
            colorMapMenu=False,
        )
        self.colorbar.sigLevelsChanged.connect(self._on_colorbar_levels)
        self.colorbar.axis.enableAutoSIPrefix(False)  # scores read as printed elsewhere
        # Below the image: panels are narrow and tall, so the bar takes height, not width.
        self.graphics.addItem(self.colorbar, row=1, col=0)

    def _add_marks(self) -> None:
        """Selection outline, crosshair and the "no sample" text over the image."""
        self.selection = pg.PlotCurveItem(pen=pg.mkPen(style.SELECTION, width=2.2))
        self.selection.setZValue(20)
        self.view.addItem(self.selection)

        dash = pg.mkPen(style.CROSSHAIR, width=1, style=Qt.PenStyle.DashLine)
        self.cross_v = pg.InfiniteLine(angle=90, movable=False, pen=dash)
        self.cross_h = pg.InfiniteLine(angle=0, movable=False, pen=dash)
        for line in (self.cross_v, self.cross_h):
            line.setZValue(30)
            line.setVisible(False)
            self.view.addItem(line, ignoreBounds=True)

        self.placeholder = pg.TextItem("no sample", color=style.MUTED, anchor=(0.5, 0.5))
        self.view.addItem(self.placeholder, ignoreBounds=True)

    # ----- header helpers -------------------------------------------------------------------
    def add_opacity_slider(self, value: float) -> QSlider:
        label = QLabel("Opacity")
        label.setObjectName("muted")
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, 100)
        slider.setValue(round(value * 100))
        slider.setFixedWidth(64)
        slider.setToolTip("Opacity of the anomaly overlay")
        slider.valueChanged.connect(lambda v: self.set_opacity(v / 100.0))
        self.header.addWidget(label)
        self.header.addWidget(slider)
        self.opacity_label = label
        self.set_opacity(value)
        return slider

    # ----- content ----------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int] | None:
        return self._shape

    def set_image(self, rgb: np.ndarray | None) -> None:
        if rgb is None:
            self.clear()
            return
        first = self._shape != rgb.shape[:2]
        self._shape = (int(rgb.shape[0]), int(rgb.shape[1]))
        self.base.setImage(rgb, autoLevels=False, levels=(0, 255))
        self.placeholder.setVisible(False)
        if first:
            self.view.autoRange(padding=0.01)

    def reset_zoom(self) -> None:
        """Show the whole image again (a cleared view zooms to its next image by itself)."""
        if self._shape is not None:
            self.view.autoRange(padding=0.01)

    def clear(self) -> None:
        self._shape = None
        self.base.clear()
        self.overlay.clear()
        self.selection.setData([], [])
        self.placeholder.setVisible(True)
        self.placeholder.setPos(0, 0)
        self.set_crosshair(-1, -1)

    def set_overlay(self, values: np.ndarray | None) -> None:
        if values is None:
            self.overlay.clear()
            return
        self.overlay.setImage(values, autoLevels=False, levels=self.colorbar.levels())

    def set_levels(self, low: float, high: float) -> None:
        self._updating_levels = True
        try:
            self.colorbar.setLevels((low, high))
        finally:
            self._updating_levels = False
        self.overlay.setLevels((low, high))

    def levels(self) -> tuple[float, float]:
        low, high = self.colorbar.levels()
        return float(low), float(high)

    def set_opacity(self, value: float) -> None:
        self.overlay.setOpacity(float(value))

    def set_selection(self, mask: np.ndarray | None) -> None:
        x, y, connect = mask_outline(mask)
        self.selection.setData(x, y, connect=connect)

    def show_selection(self, selection: Selection | None) -> None:
        """Outline the selected region (nothing for a pixel outside every region)."""
        self.set_selection(None if selection is None else selection.mask)

    def set_crosshair(self, row: int, col: int) -> None:
        inside = self._inside(row, col)
        self.cross_v.setVisible(inside)
        self.cross_h.setVisible(inside)
        if inside:
            self.cross_v.setPos(col + 0.5)
            self.cross_h.setPos(row + 0.5)

    def _inside(self, row: int, col: int) -> bool:
        return self._shape is not None and 0 <= row < self._shape[0] and 0 <= col < self._shape[1]

    # ----- mouse ------------------------------------------------------------------------------
    def pixel_at_scene(self, scene_pos: QPointF) -> tuple[int, int] | None:
        if self._shape is None or not self.view.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.view.mapSceneToView(scene_pos)
        row, col = int(np.floor(point.y())), int(np.floor(point.x()))
        return (row, col) if self._inside(row, col) else None

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        pixel = self.pixel_at_scene(scene_pos)
        self.hovered.emit(*(pixel if pixel is not None else (-1, -1)))

    def _on_mouse_clicked(self, event) -> None:  # pyqtgraph MouseClickEvent
        if self.click_filter is not None and self.click_filter(event):
            return
        if event.button() != Qt.MouseButton.LeftButton or event.double():
            return
        pixel = self.pixel_at_scene(event.scenePos())
        if pixel is not None:
            event.accept()
            self.clicked.emit(*pixel)

    def _on_colorbar_levels(self, bar) -> None:
        low, high = bar.levels()
        self.overlay.setLevels((low, high))
        if not self._updating_levels:
            self.levels_changed.emit(float(low), float(high))
