"""ROC and PRO curves plus the I-AUROC / AUPRO table (RGB, 3D, RGB + 3D) of scored samples."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from mdss_app import style

MODALITY_STYLE = {
    "fused": ("RGB+3D", "#ffb347", 2.4),
    "rgb": ("RGB", "#f28ad8", 1.6),
    "3d": ("3D", "#6fb6ff", 1.6),
}
PRO_LIMIT = 0.3
MODALITY_ROWS = ("rgb", "3d", "fused")
METRIC_COLUMNS = ("i_auroc", "aupro")
SUBSET_NAMES = {"all": "All scored samples", "mean": "Mean over defect types"}


def _plot(title: str, x_label: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(title=title)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.15)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.setMinimumHeight(150)
    plot.setMinimumWidth(200)
    plot.getAxis("bottom").enableAutoSIPrefix(False)
    plot.getAxis("left").enableAutoSIPrefix(False)
    plot.addLegend(offset=(-8, -8), labelTextSize="8pt")
    return plot


class CurvesPanel(QWidget):
    recompute_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report: Any = None
        self.roc_plot = _plot("Image ROC", "false positive rate", "true positive rate")
        self.roc_plot.setRange(xRange=(0, 1), yRange=(0, 1.02), padding=0.02)
        diagonal = pg.PlotDataItem(
            [0, 1], [0, 1], pen=pg.mkPen(style.MUTED, style=Qt.PenStyle.DotLine)
        )
        self.roc_plot.addItem(diagonal)
        self.pro_plot = _plot(f"PRO (FPR ≤ {PRO_LIMIT})", "false positive rate", "PRO")
        self.pro_plot.setRange(xRange=(0, PRO_LIMIT), yRange=(0, 1.02), padding=0.02)

        self.subset = QComboBox()
        self.subset.setToolTip(
            "Which samples the table scores: all of them, the mean over defect types, or one "
            "defect type against all good samples"
        )
        self.subset.currentIndexChanged.connect(lambda _: self._fill_table())
        self.table = QTableWidget(len(MODALITY_ROWS), 2)
        self.table.setObjectName("metricsTable")
        self.table.setHorizontalHeaderLabels(["I-AUROC", f"AUPRO@{PRO_LIMIT}"])
        self.table.setVerticalHeaderLabels([MODALITY_STYLE[m][0] for m in MODALITY_ROWS])
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.verticalHeader().setDefaultSectionSize(26)
        self.table.verticalHeader().setMinimumWidth(70)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setFixedHeight(26 * len(MODALITY_ROWS) + 30)

        self.status = QLabel("Metrics appear when labelled samples have been scored.")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        self.recompute = QPushButton("Recompute")
        self.recompute.setToolTip("Recompute the metrics from the current predictions")
        self.recompute.clicked.connect(self.recompute_requested)

        right = QVBoxLayout()
        subset_row = QHBoxLayout()
        subset_label = QLabel("Samples")
        subset_label.setObjectName("muted")
        subset_row.addWidget(subset_label)
        subset_row.addWidget(self.subset, 1)
        right.addLayout(subset_row)
        right.addWidget(self.table)
        right.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.recompute)
        right.addLayout(bottom)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.roc_plot, 2)
        layout.addWidget(self.pro_plot, 2)
        layout.addLayout(right, 3)

    def set_busy(self, message: str) -> None:
        self.status.setText(message)
        self.recompute.setEnabled(False)

    def set_message(self, message: str) -> None:
        self.status.setText(message)
        self.recompute.setEnabled(True)

    def clear(
        self, message: str = "Metrics appear when labelled samples have been scored."
    ) -> None:
        self.report = None
        for plot in (self.roc_plot, self.pro_plot):
            for item in list(plot.listDataItems())[1 if plot is self.roc_plot else 0 :]:
                plot.removeItem(item)
            plot.getPlotItem().legend.clear()
        self.subset.blockSignals(True)
        self.subset.clear()
        self.subset.blockSignals(False)
        self._fill_table()
        self.set_message(message)

    def show_report(self, report: Any, n_samples: int) -> None:
        """Draw curves and fill the table from an ``EvaluationReport`` (or clear on None)."""
        self.clear("No labelled samples among the scored ones." if report is None else "")
        if report is None:
            return
        self.report = report
        for modality in ("rgb", "3d", "fused"):
            name, colour, width = MODALITY_STYLE[modality]
            curves = report.curves.get(modality, {})
            rows = report.rows.get("all", {}).get(modality, {})
            pen = pg.mkPen(colour, width=width)
            if "roc" in curves:
                fpr, tpr = _own(curves["roc"])
                label = f"{name}  {rows.get('i_auroc', math.nan):.3f}"
                self.roc_plot.plot(fpr, tpr, pen=pen, name=label, stepMode=None)
            if "pro" in curves:
                fpr, pro = _own(curves["pro"])
                keep = fpr <= PRO_LIMIT * 1.02
                fpr, pro = _thin(fpr[keep], pro[keep])
                label = f"{name}  {rows.get('aupro', math.nan):.3f}"
                self.pro_plot.plot(fpr, pro, pen=pen, name=label)
        # Headline rows first: 'all' pools every sample (the paper's per-category number).
        names = [n for n in ("all", "mean") if n in report.rows]
        names += [n for n in report.rows if n not in ("all", "mean")]
        self.subset.blockSignals(True)
        for name in names:
            self.subset.addItem(SUBSET_NAMES.get(name, f"{name} vs good"), name)
        self.subset.blockSignals(False)
        self._fill_table()
        counts = report.counts
        split = f" ({counts['normal']} normal / {counts['anomalous']} anomalous)" if counts else ""
        self.set_message(f"{n_samples} labelled samples scored{split} · bold = best modality")

    def _fill_table(self) -> None:
        row_name = self.subset.currentData()
        row = None if self.report is None or row_name is None else self.report.rows.get(row_name)
        for c, metric in enumerate(METRIC_COLUMNS):
            values = [math.nan if row is None else row[m][metric] for m in MODALITY_ROWS]
            finite = [v for v in values if np.isfinite(v)]
            best = max(finite) if finite else math.nan
            for r, value in enumerate(values):
                item = QTableWidgetItem("—" if not np.isfinite(value) else f"{value:.3f}")
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if np.isfinite(value) and value == best:
                    font = item.font()
                    font.setBold(True)
                    item.setFont(font)
                if row_name == "all" and metric == "i_auroc":
                    item.setToolTip(self.interval_text(MODALITY_ROWS[r]))
                self.table.setItem(r, c, item)

    def interval_text(self, modality: str) -> str:
        """The 'all' row's I-AUROC bootstrap interval, in words ('' when there is none)."""
        if self.report is None or modality not in self.report.intervals:
            return ""
        low, high = self.report.intervals[modality]
        counts = self.report.counts
        return (
            f"95 % bootstrap interval {low:.3f}–{high:.3f} over "
            f"{counts['normal']} normal / {counts['anomalous']} anomalous images"
        )

    def shown_value(self, metric: str, modality: str) -> str:
        """Text of one table cell (tests read the panel through this)."""
        item = self.table.item(MODALITY_ROWS.index(modality), METRIC_COLUMNS.index(metric))
        return "" if item is None else item.text()

    def value(self, row: str, metric: str, modality: str) -> float:
        if self.report is None:
            return math.nan
        return float(self.report.rows[row][modality][metric])


def _own(curve: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Copies for the plot: pyqtgraph keeps the arrays it draws, and the report came from a
    worker thread (see ``mdss_app.workers``: nothing painted is shared with a worker)."""
    x, y = curve
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def _thin(x: np.ndarray, y: np.ndarray, limit: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Exact PRO curves have a step per pixel: draw at most ``limit`` points of them."""
    if len(x) <= limit:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, limit).astype(int))
    return x[keep], y[keep]
