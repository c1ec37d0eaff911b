"""Thresholds: the pixel threshold (regions/contours) and the image threshold (decision),
with a histogram of the loaded samples' fused image scores."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QGridLayout,
    QLabel,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mdss_app import style

SLIDER_STEPS = 1000
HISTOGRAM_BINS = 24


def _spin(tooltip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setDecimals(5)
    spin.setRange(0.0, 1e9)
    spin.setKeyboardTracking(False)
    spin.setToolTip(tooltip)
    spin.setMinimumWidth(96)
    return spin


class ThresholdPanel(QWidget):
    pixel_threshold_changed = Signal(float)
    image_threshold_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pixel_max = 1.0
        self._pixel_default = math.nan
        self._image_default = math.nan
        self._syncing = False
        self._scores: list[tuple[float, int]] = []
        # Exact values: the spin boxes show 5 decimals, the regions use the full value.
        self._pixel = math.nan
        self._image = math.nan

        self.pixel_slider = QSlider(Qt.Orientation.Horizontal)
        self.pixel_slider.setRange(0, SLIDER_STEPS)
        self.pixel_slider.setToolTip("Fused pixel score above which a pixel belongs to a region")
        self.pixel_spin = _spin("Pixel threshold on the fused map")
        self.pixel_reset = QToolButton()
        self.pixel_reset.setText("Model")
        self.pixel_reset.setToolTip("Back to the model's pixel threshold")
        self.image_spin = _spin("Image threshold on the fused image score (drag the line too)")
        self.image_reset = QToolButton()
        self.image_reset.setText("Model")
        self.image_reset.setToolTip("Back to the model's image threshold")

        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "fused image score")
        self.plot.setLabel("left", "samples")
        self.plot.getPlotItem().getViewBox().setDefaultPadding(0.02)
        self.legend = self.plot.addLegend(offset=(-6, 6), labelTextSize="8pt")
        self.bars: list[pg.BarGraphItem] = []
        self.image_line = pg.InfiniteLine(
            angle=90,
            movable=True,
            pen=pg.mkPen(style.THRESHOLD, width=2),
            hoverPen=pg.mkPen("#ffffff", width=2),
        )
        self.image_line.setZValue(10)
        self.image_line.setVisible(False)  # until a model gives a threshold
        # Legend entry for the line (an InfiniteLine cannot sit in a legend itself).
        self._line_sample = pg.PlotDataItem([], [], pen=pg.mkPen(style.THRESHOLD, width=2))
        self.plot.addItem(self.image_line)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setXRange(0, 1, padding=0.02)
        self.plot.setYRange(0, 1, padding=0)
        self.set_enabled_controls(False)
        self.summary = QLabel("")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)

        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        pixel_label = QLabel("Pixel threshold")
        image_label = QLabel("Image threshold")
        grid.addWidget(pixel_label, 0, 0)
        grid.addWidget(self.pixel_spin, 0, 2)
        grid.addWidget(self.pixel_reset, 0, 3)
        grid.addWidget(self.pixel_slider, 1, 0, 1, 4)
        grid.addWidget(image_label, 2, 0)
        grid.addWidget(self.image_spin, 2, 2)
        grid.addWidget(self.image_reset, 2, 3)
        grid.setColumnStretch(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(grid)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

        self.pixel_slider.valueChanged.connect(self._on_pixel_slider)
        self.pixel_spin.valueChanged.connect(self._on_pixel_spin)
        self.pixel_reset.clicked.connect(lambda: self.set_pixel_threshold(self._pixel_default))
        self.pixel_spin.setToolTip("Pixel threshold on the fused map (exact value kept)")
        self.image_spin.valueChanged.connect(self._on_image_spin)
        self.image_line.sigPositionChanged.connect(self._on_image_line)
        self.image_reset.clicked.connect(lambda: self.set_image_threshold(self._image_default))

        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(120)
        self._redraw_timer.timeout.connect(self._draw_histogram)

    # ----- model defaults -----------------------------------------------------------------------
    def set_enabled_controls(self, enabled: bool) -> None:
        for widget in (
            self.pixel_slider, self.pixel_spin, self.pixel_reset, self.image_spin, self.image_reset,
        ):  # fmt: skip
            widget.setEnabled(enabled)
        self.image_line.setMovable(enabled)

    def set_defaults(self, pixel: float, image: float) -> None:
        """New model: its thresholds become the defaults and the current values."""
        self.set_enabled_controls(True)
        self.image_line.setVisible(True)
        self._pixel_default, self._image_default = float(pixel), float(image)
        self.set_pixel_range(3.0 * pixel if pixel > 0 else 1.0)
        self.set_pixel_threshold(pixel)
        self.set_image_threshold(image)

    def set_pixel_range(self, maximum: float) -> None:
        if not (np.isfinite(maximum) and maximum > 0):
            return
        self._pixel_max = float(maximum)
        self._syncing = True
        try:
            self.pixel_spin.setSingleStep(self._pixel_max / 200)
            if np.isfinite(self._pixel):
                self.pixel_slider.setValue(self._to_slider(self._pixel))
        finally:
            self._syncing = False

    @property
    def pixel_threshold(self) -> float:
        return self._pixel

    @property
    def image_threshold(self) -> float:
        return self._image

    def set_pixel_threshold(self, value: float) -> None:
        """Set the exact value (spin box and slider follow) and emit when it changed."""
        if not np.isfinite(value) or value == self._pixel:
            return
        if value > self._pixel_max:
            self.set_pixel_range(value * 1.5)
        self._pixel = float(value)
        self._syncing = True
        try:
            self.pixel_spin.setValue(self._pixel)
            self.pixel_slider.setValue(self._to_slider(self._pixel))
        finally:
            self._syncing = False
        self.pixel_threshold_changed.emit(self._pixel)

    def set_image_threshold(self, value: float) -> None:
        if not np.isfinite(value) or value == self._image:
            return
        self._image = float(value)
        self._syncing = True
        try:
            self.image_spin.setValue(self._image)
            self.image_line.setValue(self._image)
        finally:
            self._syncing = False
        self._update_summary()
        self.image_threshold_changed.emit(self._image)

    # ----- histogram ----------------------------------------------------------------------------
    def set_image_scores(self, scores: list[tuple[float, int]]) -> None:
        """(fused score, label) of every scored sample; redrawn shortly after (batched)."""
        self._scores = list(scores)
        self._redraw_timer.start()

    def flush(self) -> None:
        if self._redraw_timer.isActive():
            self._redraw_timer.stop()
            self._draw_histogram()

    def _draw_histogram(self) -> None:
        for bar in self.bars:
            self.plot.removeItem(bar)
        self.bars.clear()
        self.legend.clear()
        if self.image_line.isVisible():
            self.legend.addItem(self._line_sample, "image threshold")
        values = np.array([s for s, _ in self._scores], float)
        labels = np.array([lab for _, lab in self._scores], int)
        finite = np.isfinite(values)
        values, labels = values[finite], labels[finite]
        if len(values) == 0:
            self.plot.setXRange(0, self.image_threshold * 1.5 if self.image_threshold > 0 else 1)
            self._update_summary()
            return
        top = float(values.max())
        if np.isfinite(self.image_threshold):
            top = max(top, self.image_threshold)
        hi = top * 1.05 or 1.0
        edges = np.linspace(0.0, hi, HISTOGRAM_BINS + 1)
        width = edges[1] - edges[0]
        bottom = np.zeros(HISTOGRAM_BINS)
        for label, name, colour in (
            (0, "good", style.NORMAL),
            (1, "defective", style.ANOMALY),
            (-1, "unlabelled", style.UNKNOWN),
        ):
            chosen = values[labels == label]
            if len(chosen) == 0:
                continue
            counts, _ = np.histogram(chosen, bins=edges)
            bar = pg.BarGraphItem(
                x0=edges[:-1],
                width=width * 0.92,
                y0=bottom.copy(),
                height=counts,
                brush=pg.mkBrush(colour + "cc"),
                pen=pg.mkPen(None),
            )
            self.plot.addItem(bar)
            self.legend.addItem(bar, f"{name} ({len(chosen)})")
            self.bars.append(bar)
            bottom += counts
        self.plot.setXRange(0, hi, padding=0.02)
        self.plot.setYRange(0, max(1.0, bottom.max()) * 1.6, padding=0)  # room for the legend
        self._update_summary()

    def _update_summary(self) -> None:
        values = np.array([s for s, _ in self._scores], float)
        labels = np.array([lab for _, lab in self._scores], int)
        if len(values) == 0:
            self.summary.setText("No scored samples yet.")
            return
        if not np.isfinite(self.image_threshold):
            self.summary.setText(f"{len(values)} scored samples")
            return
        flagged = values >= self.image_threshold
        text = f"{int(flagged.sum())} of {len(values)} flagged as defective"
        good, bad = labels == 0, labels == 1
        if good.any() and bad.any():
            recall = flagged[bad].mean()
            false_alarms = flagged[good].mean()
            text += f" · caught {recall:.0%} of defective · {false_alarms:.0%} false alarms"
        self.summary.setText(text)

    # ----- syncing controls -------------------------------------------------------------------
    def _to_slider(self, value: float) -> int:
        return int(round(min(max(value / self._pixel_max, 0.0), 1.0) * SLIDER_STEPS))

    def _on_pixel_slider(self, position: int) -> None:
        if not self._syncing:
            self.set_pixel_threshold(position / SLIDER_STEPS * self._pixel_max)

    def _on_pixel_spin(self, value: float) -> None:
        if not self._syncing:
            self.set_pixel_threshold(float(value))

    def _on_image_spin(self, value: float) -> None:
        if not self._syncing:
            self.set_image_threshold(float(value))

    def _on_image_line(self, line: pg.InfiniteLine) -> None:
        if not self._syncing:
            self.set_image_threshold(max(0.0, float(line.value())))
