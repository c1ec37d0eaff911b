"""Thresholds: the pixel threshold (regions/contours) and the image threshold (decision),
with a histogram of the scored samples' fused image scores. The values live in the session."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
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
from mdss_app.session import InspectorSession, Thresholds

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
    """Shows the session's thresholds and sends the user's changes back to it (``bind``)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._session: InspectorSession | None = None
        self._pixel_max = 1.0
        self._model_pixel = math.nan
        self._syncing = False
        self.bars: list[pg.BarGraphItem] = []
        self._build_controls()
        self._build_plot()
        self.summary = QLabel("")
        self.summary.setObjectName("muted")
        self.summary.setWordWrap(True)
        self._lay_out()
        self.set_enabled_controls(False)
        self._redraw_timer = QTimer(self)
        self._redraw_timer.setSingleShot(True)
        self._redraw_timer.setInterval(120)  # many scores arrive at once: draw a few times a second
        self._redraw_timer.timeout.connect(self._draw_histogram)

    def _build_controls(self) -> None:
        self.pixel_slider = QSlider(Qt.Orientation.Horizontal)
        self.pixel_slider.setRange(0, SLIDER_STEPS)
        self.pixel_slider.setToolTip("Fused pixel score above which a pixel belongs to a region")
        self.pixel_spin = _spin("Pixel threshold on the fused map (exact value kept)")
        self.pixel_reset = QToolButton()
        self.pixel_reset.setText("Model")
        self.pixel_reset.setToolTip("Back to the model's pixel threshold")
        self.image_spin = _spin("Image threshold on the fused image score (drag the line too)")
        self.image_reset = QToolButton()
        self.image_reset.setText("Model")
        self.image_reset.setToolTip("Back to the model's image threshold")

    def _build_plot(self) -> None:
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(150)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.setLabel("bottom", "fused image score")
        self.plot.setLabel("left", "samples")
        self.plot.getPlotItem().getViewBox().setDefaultPadding(0.02)
        self.legend = self.plot.addLegend(offset=(-6, 6), labelTextSize="8pt")
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

    def _lay_out(self) -> None:
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.addWidget(QLabel("Pixel threshold"), 0, 0)
        grid.addWidget(self.pixel_spin, 0, 2)
        grid.addWidget(self.pixel_reset, 0, 3)
        grid.addWidget(self.pixel_slider, 1, 0, 1, 4)
        grid.addWidget(QLabel("Image threshold"), 2, 0)
        grid.addWidget(self.image_spin, 2, 2)
        grid.addWidget(self.image_reset, 2, 3)
        grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(grid)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def bind(self, session: InspectorSession) -> None:
        """Show ``session``'s thresholds and scores; user changes go to it."""
        self._session = session
        session.events.thresholds.connect(lambda new, _old: self.show_thresholds(new))
        session.events.model.connect(lambda _model: self.set_enabled_controls(True))
        session.events.scored.connect(lambda _ref, _prediction: self._redraw_timer.start())
        session.events.scores_cleared.connect(self._draw_histogram)
        self.pixel_slider.valueChanged.connect(self._on_pixel_slider)
        self.pixel_spin.valueChanged.connect(self._on_pixel_spin)
        self.pixel_reset.clicked.connect(session.reset_pixel_threshold)
        self.image_spin.valueChanged.connect(self._on_image_spin)
        self.image_line.sigPositionChanged.connect(self._on_image_line)
        self.image_reset.clicked.connect(session.reset_image_threshold)

    # ----- showing the thresholds -----------------------------------------------------------
    def set_enabled_controls(self, enabled: bool) -> None:
        for widget in (
            self.pixel_slider, self.pixel_spin, self.pixel_reset, self.image_spin, self.image_reset,
        ):  # fmt: skip
            widget.setEnabled(enabled)
        self.image_line.setMovable(enabled)
        self.image_line.setVisible(enabled)

    def show_thresholds(self, thresholds: Thresholds) -> None:
        if thresholds.model_pixel != self._model_pixel:  # a new model: its own range
            self._model_pixel = thresholds.model_pixel
            pixel = thresholds.model_pixel
            self.set_pixel_range(3.0 * pixel if pixel > 0 else 1.0)
        if thresholds.pixel > self._pixel_max:
            self.set_pixel_range(thresholds.pixel * 1.5)
        self._syncing = True
        try:
            if math.isfinite(thresholds.pixel):
                self.pixel_spin.setValue(thresholds.pixel)
                self.pixel_slider.setValue(self._to_slider(thresholds.pixel))
            if math.isfinite(thresholds.image):
                self.image_spin.setValue(thresholds.image)
                self.image_line.setValue(thresholds.image)
        finally:
            self._syncing = False
        self._update_summary()

    def set_pixel_range(self, maximum: float) -> None:
        """The pixel threshold the slider's right end stands for."""
        if not (np.isfinite(maximum) and maximum > 0):
            return
        self._pixel_max = float(maximum)
        self._syncing = True
        try:
            self.pixel_spin.setSingleStep(self._pixel_max / 200)
            pixel = self._thresholds().pixel
            if np.isfinite(pixel):
                self.pixel_slider.setValue(self._to_slider(pixel))
        finally:
            self._syncing = False

    def _thresholds(self) -> Thresholds:
        return self._session.thresholds if self._session is not None else Thresholds()

    # ----- histogram ----------------------------------------------------------------------------
    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        if self._session is None:
            return np.zeros(0), np.zeros(0, int)
        table = self._session.score_table
        values, labels = table.scores, table.labels
        finite = np.isfinite(values)
        return values[finite], labels[finite]

    def _draw_histogram(self) -> None:
        for bar in self.bars:
            self.plot.removeItem(bar)
        self.bars.clear()
        self.legend.clear()
        if self.image_line.isVisible():
            self.legend.addItem(self._line_sample, "image threshold")
        values, labels = self._scores()
        image = self._thresholds().image
        if len(values) == 0:
            self.plot.setXRange(0, image * 1.5 if image > 0 else 1)
            self._update_summary()
            return
        top = max(float(values.max()), image) if np.isfinite(image) else float(values.max())
        hi = top * 1.05 or 1.0
        edges = np.linspace(0.0, hi, HISTOGRAM_BINS + 1)
        bottom = np.zeros(HISTOGRAM_BINS)
        for label, name, colour in (
            (0, "good", style.NORMAL),
            (1, "defective", style.ANOMALY),
            (-1, "unlabelled", style.UNKNOWN),
        ):
            chosen = values[labels == label]
            if len(chosen):
                counts, _ = np.histogram(chosen, bins=edges)
                self._add_bars(edges, bottom, counts, colour, f"{name} ({len(chosen)})")
                bottom += counts
        self.plot.setXRange(0, hi, padding=0.02)
        self.plot.setYRange(0, max(1.0, bottom.max()) * 1.6, padding=0)  # room for the legend
        self._update_summary()

    def _add_bars(
        self, edges: np.ndarray, bottom: np.ndarray, counts: np.ndarray, colour: str, name: str
    ) -> None:
        bar = pg.BarGraphItem(
            x0=edges[:-1],
            width=(edges[1] - edges[0]) * 0.92,
            y0=bottom.copy(),
            height=counts,
            brush=pg.mkBrush(colour + "cc"),
            pen=pg.mkPen(None),
        )
        self.plot.addItem(bar)
        self.legend.addItem(bar, name)
        self.bars.append(bar)

    def _update_summary(self) -> None:
        values, labels = self._scores()
        image = self._thresholds().image
        if len(values) == 0:
            self.summary.setText("No scored samples yet.")
            return
        if not np.isfinite(image):
            self.summary.setText(f"{len(values)} scored samples")
            return
        flagged = values >= image
        text = f"{int(flagged.sum())} of {len(values)} flagged as defective"
        good, bad = labels == 0, labels == 1
        if good.any() and bad.any():
            recall = flagged[bad].mean()
            false_alarms = flagged[good].mean()
            text += f" · caught {recall:.0%} of defective · {false_alarms:.0%} false alarms"
        self.summary.setText(text)

    # ----- the user's changes -------------------------------------------------------------------
    def _to_slider(self, value: float) -> int:
        return int(round(min(max(value / self._pixel_max, 0.0), 1.0) * SLIDER_STEPS))

    def _on_pixel_slider(self, position: int) -> None:
        if not self._syncing and self._session is not None:
            self._session.set_pixel_threshold(position / SLIDER_STEPS * self._pixel_max)

    def _on_pixel_spin(self, value: float) -> None:
        if not self._syncing and self._session is not None:
            self._session.set_pixel_threshold(float(value))

    def _on_image_spin(self, value: float) -> None:
        if not self._syncing and self._session is not None:
            self._session.set_image_threshold(float(value))

    def _on_image_line(self, line: pg.InfiniteLine) -> None:
        if not self._syncing and self._session is not None:
            self._session.set_image_threshold(max(0.0, float(line.value())))
