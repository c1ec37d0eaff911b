"""3D view of the object points coloured by anomaly score (VTK in a Qt widget).

Data building lives in :mod:`cloud_data`; this module only renders. When no GL context can be
had (Qt ``offscreen`` platform, no display, VTK missing) the panel shows a placeholder label and
every method stays callable, so the rest of the window works the same.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap

import numpy as np
from PySide6.QtCore import QTimer, QVariantAnimation, Signal
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from mdss_app import style
from mdss_app.panels.cloud_data import (
    DISPLAY_ARRAY,
    CloudData,
    build_cloud,
    point_colours,
    score_lookup_table,
    sensor_view,
    set_display_colours,
    set_scores,
)
from mdss_app.panels.image_view import panel_title
from mdss_app.session import InspectorSession, Selection, View
from mdss_core.api import Prediction, Sample

log = logging.getLogger(__name__)

HEADLESS_PLATFORMS = {"offscreen", "minimal", "vnc"}
FLY_DURATION_MS = 450
CLICK_TOLERANCE_PX = 4
BAR_STRIP_PX = (64, 96)  # width of the colour bar's own strip, right of the cloud (min, max)
BAR_TITLE_CHARS = 10  # a title line that fits the narrowest strip at the bar's font size
REGION_SHARE = 1 / 3  # a clicked region fills about this share of the view
MIN_CONTEXT = 0.07  # …but keep at least this share of the object's diagonal as radius (context)


def vtk_unavailable_reason() -> str:
    """Why an interactive VTK view cannot be shown here ('' when it can)."""
    if os.environ.get("MDSS_NO_VTK"):
        return "3D view disabled (MDSS_NO_VTK is set)"
    platform = QGuiApplication.platformName()
    if platform in HEADLESS_PLATFORMS:
        return f"3D view needs a display (Qt platform '{platform}')"
    has_display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    if sys.platform.startswith("linux") and not has_display:
        return "3D view needs a display (no DISPLAY)"
    try:
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
    except ImportError as exc:  # e.g. libGL missing
        return f"3D view unavailable: {exc}"
    return ""


def _same_mask(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _hex_rgb(colour: str) -> tuple[float, float, float]:
    colour = colour.lstrip("#")
    return tuple(int(colour[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def bar_title(caption: str) -> str:
    """What the colours of the points are, as the colour bar's title (VTK's font has no σ),
    wrapped to lines that fit the bar's narrow strip (VTK clips, it does not wrap)."""
    lines = textwrap.wrap(caption.replace("σ", "s.d."), BAR_TITLE_CHARS, break_long_words=False)
    return "\n".join(["3D score", *lines])


def fit_distance(
    points: np.ndarray,
    centre: np.ndarray,
    direction: np.ndarray,
    up: np.ndarray,
    view_angle_deg: float,
    aspect: float,
    margin: float = 1.08,
) -> float:
    """Camera distance from ``centre`` at which all ``points`` fit the view (with ``margin``),
    looking along ``direction`` with ``up``: tighter than VTK's bounding-sphere fit, so the
    object fills the view instead of floating in it."""
    right = np.cross(direction, up)
    offsets = points - centre
    half_w = float(np.abs(offsets @ right).max())
    half_h = float(np.abs(offsets @ up).max())
    depth = float(np.abs(offsets @ direction).max())
    tan_v = np.tan(np.radians(view_angle_deg) / 2)
    tan_h = tan_v * (aspect if aspect > 0 else 1.0)
    return margin * max(half_w / tan_h, half_h / tan_v) + depth


def framing_distance(
    radius: float, view_angle_deg: float, aspect: float, share: float = REGION_SHARE
) -> float:
    """Camera distance at which a sphere of ``radius`` spans ``share`` of the view.

    ``view_angle_deg`` is VTK's vertical view angle and ``aspect`` the viewport's width over
    its height: in a narrow view the width is what limits, so the smaller half-angle is used.
    """
    half_tan = np.tan(np.radians(view_angle_deg) / 2)
    half_tan = min(half_tan, half_tan * aspect) if aspect > 0 else half_tan
    return float(radius / (share * half_tan))


def _score_bar():  # -> vtkScalarBarActor (VTK is imported only when a 3D view is built)
    """The colour bar of the scores, hidden until the points are coloured by score. It lives
    in its own renderer (a strip right of the cloud's), so it never covers a point."""
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    bar = vtkScalarBarActor()
    bar.SetTitle(bar_title("|sdf|"))
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%.3g")
    bar.SetBarRatio(0.3)
    bar.SetPosition(0.08, 0.04)
    bar.SetWidth(0.84)
    bar.SetHeight(0.9)
    bar.SetVerticalTitleSeparation(6)
    bar.UnconstrainedFontSizeOn()
    for text in (
        bar.GetTitleTextProperty(),
        bar.GetLabelTextProperty(),
    ):
        text.SetColor(*_hex_rgb(style.TEXT))
        text.SetFontSize(11)
        text.ShadowOff()
        text.BoldOff()
        text.ItalicOff()
    bar.VisibilityOff()
    return bar


class CloudPanel(QWidget):
    """Object points (``Prediction.object_mask``) coloured by ``point_map`` or by RGB."""

    picked = Signal(int, int)  # row, col of a clicked 3D point

    def __init__(self, enable_vtk: bool | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("imagePanel")
        self.cloud: CloudData | None = None
        self._levels = (0.0, 1.0)
        self._caption = "|sdf|"
        self._mode = "score"
        self._initialized = False
        self._closed = False
        self._init_attempts = 0
        self._has_prediction = False
        self._view_key: tuple[str, bool] | None = None
        self._keep: np.ndarray | None = None  # the object mask the geometry was built for
        self._home_distance = 0.0
        self.selected_points: np.ndarray | None = None  # bool per shown point
        self._press_pos: tuple[int, int] | None = None
        self._fly: QVariantAnimation | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(self._build_header())
        reason = "" if enable_vtk else vtk_unavailable_reason()
        if enable_vtk is False:
            reason = "3D view disabled"
        self.vtk_widget = None
        self.placeholder: QLabel | None = None
        if not reason:
            try:
                self._build_vtk()
            except Exception as exc:  # a broken GL stack must not stop the inspector
                log.warning("VTK view unavailable: %s", exc)
                reason = f"3D view unavailable: {exc}"
                self.vtk_widget = None
        if reason:
            self.placeholder = QLabel(reason)
            self.placeholder.setObjectName("placeholder")
            self.placeholder.setWordWrap(True)
            self.placeholder.setMinimumSize(200, 200)
            layout.addWidget(self.placeholder, 1)
        else:
            layout.addWidget(self.vtk_widget, 1)

    def _build_header(self) -> QHBoxLayout:
        title = panel_title("3D")
        title.setToolTip("Object points coloured by their 3D anomaly score (drag to rotate)")
        self.colour_mode = QComboBox()
        self.colour_mode.addItem("Score", "score")
        self.colour_mode.addItem("RGB", "rgb")
        self.colour_mode.setToolTip("Colour the points by their anomaly score or by the image")
        self.colour_mode.currentIndexChanged.connect(
            lambda _: self.set_colour_mode(self.colour_mode.currentData())
        )
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset")
        self.reset_button.setToolTip("Look at the whole object again")
        self.reset_button.clicked.connect(self.reset_camera)
        header = QHBoxLayout()
        header.setContentsMargins(8, 4, 8, 4)
        header.addWidget(title, 1)
        header.addWidget(self.colour_mode)
        header.addWidget(self.reset_button)
        return header

    # ----- VTK scene ----------------------------------------------------------------------------
    def _build_vtk(self) -> None:
        import vtkmodules.qt

        vtkmodules.qt.PyQtImpl = "PySide6"  # before importing the Qt interactor
        import vtkmodules.vtkInteractionStyle  # noqa: F401  (registers the styles)
        import vtkmodules.vtkRenderingOpenGL2  # noqa: F401
        from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor
        from vtkmodules.vtkFiltersSources import vtkSphereSource
        from vtkmodules.vtkRenderingCore import (
            vtkActor,
            vtkPointPicker,
            vtkPolyDataMapper,
            vtkRenderer,
        )

        self.vtk_widget = QVTKRenderWindowInteractor(self)
        self.vtk_widget.setMinimumSize(200, 200)
        self.renderer = vtkRenderer()
        self.renderer.GradientBackgroundOn()
        self.renderer.SetBackground(*_hex_rgb("#0f1115"))
        self.renderer.SetBackground2(*_hex_rgb("#2a3038"))
        self.vtk_widget.GetRenderWindow().AddRenderer(self.renderer)

        self.mapper = vtkPolyDataMapper()
        self.actor = vtkActor()
        self.actor.SetMapper(self.mapper)
        prop = self.actor.GetProperty()
        prop.SetPointSize(4)
        prop.SetRenderPointsAsSpheres(True)
        self.actor.VisibilityOff()
        self.renderer.AddActor(self.actor)

        self.marker_source = vtkSphereSource()
        self.marker_source.SetThetaResolution(20)
        self.marker_source.SetPhiResolution(20)
        marker_mapper = vtkPolyDataMapper()
        marker_mapper.SetInputConnection(self.marker_source.GetOutputPort())
        self.marker = vtkActor()
        self.marker.SetMapper(marker_mapper)
        self.marker.GetProperty().SetColor(*_hex_rgb(style.SELECTION))
        self.marker.PickableOff()
        self.marker.VisibilityOff()
        self.renderer.AddActor(self.marker)
        self.scalar_bar = _score_bar()
        self.scalar_bar.SetTitle(bar_title(self._caption))
        self.bar_renderer = vtkRenderer()  # the colour bar's strip; the cloud's renderer is left
        self.bar_renderer.SetBackground(*_hex_rgb("#181b21"))
        self.bar_renderer.InteractiveOff()  # drags over the strip still turn the cloud
        self.bar_renderer.AddViewProp(self.scalar_bar)
        self.vtk_widget.GetRenderWindow().AddRenderer(self.bar_renderer)
        self._layout_viewports()
        self.picker = vtkPointPicker()
        self.picker.SetTolerance(0.004)
        self.picker.PickFromListOn()
        self.picker.AddPickList(self.actor)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self.vtk_widget is not None and not self._initialized:
            QTimer.singleShot(0, self._initialize)

    def _initialize(self) -> None:
        """Initialize the interactor only once its native window is exposed (else X errors)."""
        if self._initialized or self._closed or self.vtk_widget is None:
            return
        handle = self.vtk_widget.windowHandle()
        if not self.vtk_widget.isVisible() or handle is None or not handle.isExposed():
            self._init_attempts += 1
            if self._init_attempts < 100 and self.isVisible():
                QTimer.singleShot(30, self._initialize)
            return
        from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera

        self.vtk_widget.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.vtk_widget.AddObserver("LeftButtonPressEvent", self._on_press, 1.0)
        self.vtk_widget.AddObserver("LeftButtonReleaseEvent", self._on_release, 1.0)
        self.vtk_widget.Initialize()
        self._initialized = True
        self.reset_camera()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self.vtk_widget is not None:
            self._layout_viewports()

    def _layout_viewports(self) -> None:
        """The cloud's viewport on the left; the colour bar's strip on the right when shown."""
        shown = bool(self.scalar_bar.GetVisibility())
        width = max(self.vtk_widget.width(), 1)
        strip = min(max(0.28 * width, BAR_STRIP_PX[0]), BAR_STRIP_PX[1])
        split = 1.0 - min(0.45, strip / width) if shown else 1.0
        self.renderer.SetViewport(0.0, 0.0, split, 1.0)
        self.bar_renderer.SetViewport(split, 0.0, 1.0, 1.0)
        self.bar_renderer.SetDraw(shown)

    def viewports(self) -> tuple[tuple[float, ...], tuple[float, ...] | None]:
        """(cloud viewport, colour bar viewport or None when hidden), VTK's (x0, y0, x1, y1)."""
        cloud = tuple(self.renderer.GetViewport())
        shown = self.scalar_bar.GetVisibility() and self.bar_renderer.GetDraw()
        return cloud, tuple(self.bar_renderer.GetViewport()) if shown else None

    @property
    def ready(self) -> bool:
        """True once the GL view is initialized and can render/grab."""
        return self._initialized and not self._closed

    def render(self) -> None:  # noqa: D401 - VTK naming
        if self.ready:
            self.vtk_widget.GetRenderWindow().Render()

    def shutdown(self) -> None:
        """Close the VTK widget exactly once; its closeEvent finalizes the render window."""
        if self._fly is not None:
            self._fly.stop()
        if self.vtk_widget is not None and not self._closed:
            self._closed = True
            self.vtk_widget.close()

    # ----- content ----------------------------------------------------------------------------
    def bind(self, session: InspectorSession) -> None:
        session.events.view.connect(self.show_view)
        session.events.selection.connect(self.show_selection)

    def show_view(self, view: View) -> None:
        if view.loading:
            return
        self.show_sample(view.sample, view.prediction)

    def show_selection(self, selection: Selection | None) -> None:
        """Dim all but the selected region and fly there; a pixel outside gets the marker."""
        mask = None if selection is None else selection.mask
        self.highlight_region(mask, fly=True)
        if selection is not None and mask is None:
            self.set_marker(selection.row, selection.col)

    def show_sample(self, sample: Sample | None, prediction: Prediction | None = None) -> None:
        """All valid points before a prediction exists; the object points once it does.

        The geometry is built once per sample and set of points: a new prediction for the same
        points (another model, a rescoring) only recolours them.
        """
        if sample is None:
            self.cloud = None
            self._view_key = None
            if self.vtk_widget is not None:
                self.actor.VisibilityOff()
                self.marker.VisibilityOff()
                self.scalar_bar.VisibilityOff()
                self._layout_viewports()
                self.render()
            return
        keep = None if prediction is None else prediction.object_mask
        scores = None if prediction is None else prediction.point_map
        # Re-frame when the sample or the kind of cloud (all points / object only) changes.
        view_key = (sample.ref.key, prediction is not None)
        reframe = view_key != self._view_key
        self._view_key = view_key
        self._has_prediction = prediction is not None
        if self.cloud is not None and not reframe and _same_mask(keep, self._keep):
            set_scores(self.cloud, scores)
            self._apply_colouring()
            return
        self._keep = keep
        self.cloud = build_cloud(sample.xyz, keep, scores, sample.rgb)
        self.selected_points = None
        if self.vtk_widget is None:
            return
        self.mapper.SetInputData(self.cloud.polydata)
        self.actor.SetVisibility(self.cloud.n_points > 0)
        self.marker.VisibilityOff()
        self.marker_source.SetRadius(self.cloud.scale() * 0.006)
        self._apply_colouring()
        if reframe:
            self.reset_camera()
        else:
            self.renderer.ResetCameraClippingRange()
            self.render()

    def set_caption(self, text: str) -> None:
        """Title of the score colour bar (it depends on the model's fusion rule)."""
        self._caption = text
        if getattr(self, "scalar_bar", None) is not None:
            self.scalar_bar.SetTitle(bar_title(text))
            self.render()

    def set_levels(self, low: float, high: float) -> None:
        self._levels = (float(low), float(high))
        self._apply_colouring()

    def set_colour_mode(self, mode: str) -> None:
        self._mode = "rgb" if mode == "rgb" else "score"
        index = self.colour_mode.findData(self._mode)
        if index != self.colour_mode.currentIndex():
            self.colour_mode.setCurrentIndex(index)
        self._apply_colouring()

    def _apply_colouring(self) -> None:
        if self.cloud is None:
            return
        by_score = self._mode == "score" and self._has_prediction
        colours = point_colours(
            self.cloud, "score" if by_score else "rgb", self._levels, self.selected_points
        )
        set_display_colours(self.cloud, colours)
        if self.vtk_widget is None:
            return
        # Colours are computed here (numpy) so a selection can dim the rest of the cloud.
        self.mapper.ScalarVisibilityOn()
        self.mapper.SetScalarModeToUsePointFieldData()
        self.mapper.SelectColorArray(DISPLAY_ARRAY)
        self.mapper.SetColorModeToDirectScalars()
        if by_score:
            self.scalar_bar.SetLookupTable(score_lookup_table(*self._levels))
        self.scalar_bar.SetVisibility(by_score)
        self._layout_viewports()
        self.render()

    # ----- linking ------------------------------------------------------------------------------
    def set_marker(self, row: int, col: int) -> None:
        """Put the crosshair sphere on the point of pixel (row, col); hide it if none."""
        if self.vtk_widget is None:
            return
        point = -1 if self.cloud is None else self.cloud.point_at_pixel(row, col)
        if point < 0:
            if self.marker.GetVisibility():
                self.marker.VisibilityOff()
                self.render()
            return
        self.marker_source.SetCenter(*self.cloud.points[point])
        self.marker.VisibilityOn()
        self.render()

    def highlight_region(self, mask: np.ndarray | None, fly: bool = True) -> bool:
        """Dim every point outside ``mask`` and fly to the region; False when it has no points."""
        if self.cloud is None:
            return False
        selected = None if mask is None else mask.ravel()[self.cloud.pixel_index]
        if selected is not None and not selected.any():
            selected = None
        changed = (selected is None) != (self.selected_points is None) or (
            selected is not None and not np.array_equal(selected, self.selected_points)
        )
        self.selected_points = selected
        if changed:
            self._apply_colouring()
        if selected is None:
            return False
        if fly:
            self.fly_to(self.cloud.points[selected])
        return True

    def fly_to(self, points: np.ndarray) -> None:
        """Animate the camera onto ``points``: the region fills about a third of the view, with
        at least ``MIN_CONTEXT`` of the object around it; the viewing direction is kept."""
        if not self.ready or len(points) == 0:
            return
        camera = self.renderer.GetActiveCamera()
        start_focal = np.array(camera.GetFocalPoint())
        start_pos = np.array(camera.GetPosition())
        direction = start_pos - start_focal
        direction /= np.linalg.norm(direction) or 1.0
        low, high = points.min(axis=0), points.max(axis=0)
        radius = max(float(np.linalg.norm(high - low)) / 2, MIN_CONTEXT * self.cloud.scale())
        distance = framing_distance(
            radius, camera.GetViewAngle(), self.renderer.GetTiledAspectRatio()
        )
        home = self._home_distance or float(np.linalg.norm(start_pos - start_focal))
        distance = min(distance, home)  # a region larger than that: the whole object
        end_focal = points.mean(axis=0)
        end_pos = end_focal + direction * distance
        self._animate(start_focal, start_pos, end_focal, end_pos)

    def _animate(self, start_focal, start_pos, end_focal, end_pos) -> None:
        camera = self.renderer.GetActiveCamera()
        if self._fly is not None:
            self._fly.stop()
        self._fly = QVariantAnimation(self)
        self._fly.setDuration(FLY_DURATION_MS)
        self._fly.setStartValue(0.0)
        self._fly.setEndValue(1.0)

        def step(t: float) -> None:
            if self._closed:
                return
            s = 0.5 - 0.5 * np.cos(np.pi * float(t))  # ease in/out
            camera.SetFocalPoint(*(start_focal + s * (end_focal - start_focal)))
            camera.SetPosition(*(start_pos + s * (end_pos - start_pos)))
            self.renderer.ResetCameraClippingRange()
            self.render()

        self._fly.valueChanged.connect(step)
        self._fly.start()

    def camera_focal_point(self) -> np.ndarray | None:
        if self.vtk_widget is None:
            return None
        return np.array(self.renderer.GetActiveCamera().GetFocalPoint())

    def reset_camera(self) -> None:
        """The whole object, seen along the sensor's axis with the image's orientation (row 0
        at the top, column 0 on the left), so the 3D view starts out like the 2D views."""
        if not self.ready or self.cloud is None or self.cloud.n_points == 0:
            return
        if self._fly is not None:
            self._fly.stop()
        camera = self.renderer.GetActiveCamera()
        direction, up = sensor_view(self.cloud)
        low, high = self.cloud.points.min(axis=0), self.cloud.points.max(axis=0)
        centre = (low + high) / 2
        distance = fit_distance(
            self.cloud.points,
            centre,
            direction,
            up,
            camera.GetViewAngle(),
            self.renderer.GetTiledAspectRatio(),
        )
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre - direction * distance))
        camera.SetViewUp(*up)
        self._home_distance = camera.GetDistance()
        self.renderer.ResetCameraClippingRange()
        self.render()

    def forget_view(self) -> None:
        """Another folder: no points, no selection, and the next sample gets a fresh camera."""
        if self._fly is not None:
            self._fly.stop()
        self.show_sample(None)
        self._keep = None
        self.selected_points = None

    # ----- picking ------------------------------------------------------------------------------
    def _on_press(self, interactor, _event) -> None:
        self._press_pos = interactor.GetEventPosition()

    def _on_release(self, interactor, _event) -> None:
        if self._press_pos is None:
            return
        x, y = interactor.GetEventPosition()
        px, py = self._press_pos
        self._press_pos = None
        if abs(x - px) > CLICK_TOLERANCE_PX or abs(y - py) > CLICK_TOLERANCE_PX:
            return  # a drag rotates the camera, it is not a pick
        self.pick_display(x, y)

    def pick_display(self, x: int, y: int) -> tuple[int, int] | None:
        """Pick the point under display coordinates (VTK's, origin bottom-left)."""
        if not self.ready or self.cloud is None:
            return None
        self.picker.Pick(x, y, 0, self.renderer)
        pixel = self.cloud.pixel_of_point(self.picker.GetPointId())
        if pixel is not None:
            self.picked.emit(*pixel)
        return pixel

    # ----- screenshots --------------------------------------------------------------------------
    def grab_frame(self) -> QImage | None:
        """The rendered GL view as an image (a Qt widget grab cannot capture GL content)."""
        if not self.ready:
            return None
        from vtkmodules.util.numpy_support import vtk_to_numpy
        from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

        window = self.vtk_widget.GetRenderWindow()
        window.Render()
        grab = vtkWindowToImageFilter()
        grab.SetInput(window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        w, h, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)
        pixels = np.ascontiguousarray(pixels[::-1, :, :3])  # VTK rows start at the bottom
        return QImage(pixels.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
