"""RGB image with the student–teacher (RGB branch) anomaly map as an overlay."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from mdss_app.panels.image_view import ImageView2D
from mdss_app.session import InspectorSession, View


class ImagePanel(ImageView2D):
    """Shows ``Prediction.rgb_map_aligned``: the RGB map on the 3D score scale, so its colours
    mean the same as in the 3D and fused panels."""

    def __init__(self, opacity: float = 0.6, parent: QWidget | None = None) -> None:
        super().__init__("RGB", "RGB student–teacher score (3D scale)", parent)
        self.title.setToolTip("RGB image with the RGB branch's student–teacher anomaly map")
        self.opacity_slider = self.add_opacity_slider(opacity)

    def bind(self, session: InspectorSession) -> None:
        session.events.view.connect(self.show_view)
        session.events.selection.connect(self.show_selection)

    def show_view(self, view: View) -> None:
        if view.loading:
            return
        self.set_image(None if view.sample is None else view.sample.rgb)
        prediction = view.prediction
        self.set_overlay(None if prediction is None else prediction.rgb_map_aligned)
