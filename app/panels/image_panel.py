"""RGB image with the student–teacher (RGB branch) anomaly map as an overlay."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QWidget

from mdss_app.panels.image_view import ImageView2D
from mdss_core.api import Prediction, Sample


class ImagePanel(ImageView2D):
    """Shows ``Prediction.rgb_map_aligned``: the RGB map on the 3D score scale, so its colours
    mean the same as in the 3D and fused panels."""

    def __init__(self, opacity: float = 0.6, parent: QWidget | None = None) -> None:
        super().__init__("RGB", "RGB student–teacher score (3D scale)", parent)
        self.title.setToolTip("RGB image with the RGB branch's student–teacher anomaly map")
        self.opacity_slider = self.add_opacity_slider(opacity)

    def show_sample(self, sample: Sample | None) -> None:
        self.set_image(None if sample is None else sample.rgb)

    def show_prediction(self, prediction: Prediction | None) -> None:
        self.set_overlay(None if prediction is None else prediction.rgb_map_aligned)

    def overlay_values(self) -> np.ndarray | None:
        return self.overlay.image
