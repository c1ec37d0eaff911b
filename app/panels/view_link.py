"""Keep the views together: 2D views on the same centre and zoom, one colour scale for every
panel, one crosshair (and its 3D marker) wherever the pointer is.

pyqtgraph's setXLink/setYLink copy each axis range separately; with locked aspect ratios and
views of different pixel sizes the two links fight and the zoom drifts. Linking the centre and
the scale (image pixels per screen pixel) instead gives the same picture in every view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg

if TYPE_CHECKING:
    from mdss_app.panels.cloud_panel import CloudPanel
    from mdss_app.panels.image_view import ImageView2D


class LinkedViews:
    """The 2D views and the 3D view of one window, moved together."""

    def __init__(self, views: list[ImageView2D], cloud: CloudPanel) -> None:
        self.views, self.cloud = views, cloud
        self.zoom = ViewLink(*(view.view for view in views))
        for view in views:
            view.levels_changed.connect(self.set_levels)

    def set_levels(self, low: float, high: float) -> None:
        """One colour scale for every panel: the same colour means the same score."""
        for view in self.views:
            if view.levels() != (low, high):
                view.set_levels(low, high)
        self.cloud.set_levels(low, high)

    def set_crosshair(self, row: int, col: int) -> None:
        for view in self.views:
            view.set_crosshair(row, col)
        self.cloud.set_marker(row, col)


class ViewLink:
    def __init__(self, *views: pg.ViewBox) -> None:
        self.views = list(views)
        self._busy = False
        for view in self.views:
            view.sigRangeChanged.connect(self._on_changed)
            view.sigResized.connect(self._on_resized)

    def _on_changed(self, source: pg.ViewBox, *_args) -> None:
        if self._busy:
            return
        self.follow(source)

    def _on_resized(self, resized: pg.ViewBox) -> None:
        # A resized view takes the zoom of the others, not the other way round.
        others = [v for v in self.views if v is not resized]
        if others and not self._busy:
            self._busy = True
            try:
                _match(resized, others[0])
            finally:
                self._busy = False

    def follow(self, source: pg.ViewBox) -> None:
        self._busy = True
        try:
            for view in self.views:
                if view is not source:
                    _match(view, source)
        finally:
            self._busy = False


def _match(view: pg.ViewBox, source: pg.ViewBox) -> None:
    (x0, x1), (y0, y1) = source.viewRange()
    width = max(source.width(), 1.0)
    scale = (x1 - x0) / width  # image units per screen pixel
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half_w = scale * max(view.width(), 1.0) / 2
    half_h = scale * max(view.height(), 1.0) / 2
    view.setRange(xRange=(cx - half_w, cx + half_w), yRange=(cy - half_h, cy + half_h), padding=0)
