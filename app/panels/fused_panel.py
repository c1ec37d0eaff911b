"""Fused anomaly map over a grey copy of the image, with threshold and ground-truth outlines."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QWidget

from mdss_app import style
from mdss_app.panels.image_view import ImageView2D
from mdss_app.panels.overlays import mask_outline
from mdss_app.session import InspectorSession, View
from mdss_core.api import RegionSet


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """Dimmed grey image: colour stays reserved for scores in this panel."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (grey * 0.8).astype(np.uint8)


class FusedPanel(ImageView2D):
    def __init__(self, opacity: float = 0.6, parent: QWidget | None = None) -> None:
        super().__init__("Fused", "fused score = max(RGB, 3D)", parent)
        self.title.setToolTip("Fused RGB + 3D anomaly map over a grey copy of the image")
        self._gt: np.ndarray | None = None

        self.threshold_curve = pg.PlotCurveItem(pen=pg.mkPen(style.THRESHOLD, width=1.6))
        self.gt_curve = pg.PlotCurveItem(
            pen=pg.mkPen(style.GT, width=1.6, style=Qt.PenStyle.DashLine)
        )
        for z, curve in ((15, self.threshold_curve), (16, self.gt_curve)):
            curve.setZValue(z)
            self.view.addItem(curve)

        self.show_threshold = QCheckBox("Threshold")
        self.show_threshold.setChecked(True)
        self.show_threshold.setObjectName("thresholdCheck")
        self.show_threshold.setToolTip("Outline of the fused map at the pixel threshold")
        self.show_threshold.toggled.connect(self.threshold_curve.setVisible)
        self.show_gt = QCheckBox("GT")
        self.show_gt.setToolTip("Outline of the ground-truth defect mask (when the sample has one)")
        self.show_gt.setChecked(True)
        self.show_gt.setObjectName("gtCheck")
        self.show_gt.toggled.connect(self.gt_curve.setVisible)
        self.header.addWidget(self.show_threshold)
        self.header.addWidget(self.show_gt)
        self.opacity_slider = self.add_opacity_slider(opacity)
        self.opacity_label.setVisible(False)  # the RGB panel's label explains the slider

    def bind(self, session: InspectorSession) -> None:
        session.events.view.connect(self.show_view)
        session.events.regions.connect(lambda view: self.show_regions(view.regions))
        session.events.selection.connect(self.show_selection)

    def show_view(self, view: View) -> None:
        if view.loading:
            return
        sample, prediction = view.sample, view.prediction
        if sample is None:
            self.set_image(None)
            self._gt = None
        else:
            self.set_image(to_grey(sample.rgb))
            self._gt = sample.gt if sample.gt is not None and sample.gt.any() else None
        self._draw_gt()
        self.set_overlay(None if prediction is None else prediction.fused_map)
        self.show_regions(view.regions)

    def show_regions(self, regions: RegionSet | None) -> None:
        """Outline of the fused map at the pixel threshold: the regions' pixels."""
        x, y, connect = mask_outline(None if regions is None else regions.mask())
        self.threshold_curve.setData(x, y, connect=connect)

    def _draw_gt(self) -> None:
        x, y, connect = mask_outline(self._gt)
        self.gt_curve.setData(x, y, connect=connect)
