"""3D view of the object points coloured by anomaly score (VTK in a Qt widget).

Data building lives in :mod:`cloud_data`; this module only renders. When no GL context can be
had (Qt ``offscreen`` platform, no display, VTK missing) the panel shows a placeholder label and
every method stays callable, so the rest of the window works the same.
"""

from __future__ import annotations

import logging
import os
import sys

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


def _score_bar():  # -> vtkScalarBarActor (VTK is imported only when a 3D view is built)
    """The colour bar of the scores, hidden until the points are coloured by score."""
    from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor

    bar = vtkScalarBarActor()
    bar.SetTitle("|sdf|")
    bar.SetNumberOfLabels(5)
    bar.SetLabelFormat("%.3g")
    bar.SetBarRatio(0.25)
    bar.SetPosition(0.8, 0.1)
    bar.SetWidth(0.17)
    bar.SetHeight(0.76)
    bar.UnconstrainedFontSizeOn()
    for text in (
        bar.GetTitleTextProperty(),
        bar.GetLabelTextProperty(),
    ):
        text.SetColor(*_hex_rgb(style.TEXT))
        text.SetFontSize(12)
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
        title.setToolTip("Object points coloured by their |sdf| anomaly score (drag to rotate)")
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
        self.scalar_bar.SetTitle(self._caption)
        self.renderer.AddViewProp(self.scalar_bar)
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
            self.scalar_bar.SetTitle(text)

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
        """Animate the camera so its focal point lands on the centre of ``points``."""
        if not self.ready or len(points) == 0:
            return
        camera = self.renderer.GetActiveCamera()
        start_focal = np.array(camera.GetFocalPoint())
        start_pos = np.array(camera.GetPosition())
        direction = start_pos - start_focal
        direction /= np.linalg.norm(direction) or 1.0
        extent = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0)))
        # Close enough to see the defect, far enough to keep the object around it in view.
        home = self._home_distance or float(np.linalg.norm(start_pos - start_focal))
        distance = float(np.clip(extent * 4.0, 0.5 * home, 0.75 * home))
        end_focal = points.mean(axis=0)
        end_pos = end_focal + direction * distance
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
        """Look at the object from the sensor side (image up = up), slightly tilted for depth."""
        if not self.ready or self.cloud is None or self.cloud.n_points == 0:
            return
        if self._fly is not None:
            self._fly.stop()
        camera = self.renderer.GetActiveCamera()
        centre = self.cloud.points.mean(axis=0)
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre - np.array([0.0, 0.0, 1.0])))
        camera.SetViewUp(0.0, -1.0, 0.0)
        self.renderer.ResetCamera()
        camera.Elevation(-28)
        camera.OrthogonalizeViewUp()
        camera.Zoom(1.15)
        self._home_distance = camera.GetDistance()
        self.renderer.ResetCameraClippingRange()
        self.render()

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
