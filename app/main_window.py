"""The inspector's main window: layout and wiring.

The state (dataset, model, predictions, thresholds, shown sample, selection) lives in the
Qt-free :class:`InspectorSession`; the panels render it and send it what the user does; long
work runs as background :mod:`commands <mdss_app.commands>`. This module lays the panels out,
connects the three, and words messages for the user.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QMainWindow, QMessageBox, QSplitter

from mdss_app import style
from mdss_app.commands import Commands
from mdss_app.menus import ask_about_mismatch, build_actions, build_menus
from mdss_app.panels.cloud_panel import CloudPanel
from mdss_app.panels.curves_panel import CurvesPanel
from mdss_app.panels.fused_panel import FusedPanel
from mdss_app.panels.image_panel import ImagePanel
from mdss_app.panels.image_view import ImageView2D
from mdss_app.panels.inspector import InspectorPanel, pixel_text
from mdss_app.panels.overlays import display_ceiling
from mdss_app.panels.sample_list import SampleListPanel
from mdss_app.panels.threshold_panel import ThresholdPanel
from mdss_app.panels.view_link import LinkedViews
from mdss_app.sample_loader import SampleLoader
from mdss_app.session import InspectorSession, Selection
from mdss_app.settings import AppSettings
from mdss_app.status import StatusFields
from mdss_app.window_layout import available_geometry, default_layout, initial_geometry, make_dock
from mdss_app.workers import BackgroundRunner
from mdss_core import api
from mdss_core.api import DatasetIndex, Prediction, Region, SampleRef

APP_TITLE = "mdss inspector"


class MainWindow(QMainWindow):
    # For tests, the screenshot mode and anything else that waits on the window.
    prediction_arrived = Signal(str)  # sample key
    selection_changed = Signal(object)  # Region | dict of local scores | None
    error_shown = Signal(str)

    def __init__(
        self,
        settings: AppSettings | None = None,
        enable_vtk: bool | None = None,
        interactive: bool = True,
    ) -> None:
        super().__init__()
        style.configure_pyqtgraph()  # row-major images even when apply_style was not called
        self.settings = settings or AppSettings()
        self.interactive = interactive  # False: errors go to the status bar, never a dialog
        self.last_error = ""
        self.background = BackgroundRunner(self)
        self.session = InspectorSession(self.background.run)
        self.setWindowTitle(APP_TITLE)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        self._build_panels(enable_vtk)
        self._build_docks()
        self.status_fields = StatusFields(self.statusBar())
        self.task_status = self.status_fields.task_status
        self.commands = Commands(
            self.session, self.settings, self.task_status, self.curves_panel, self
        )
        self.loader = SampleLoader(self.commands.tasks, self)
        self.menu_actions = build_actions(self)
        self.toolbar = build_menus(self, self.menu_actions)
        self._wire()
        self.setGeometry(initial_geometry(available_geometry(self)))
        self._layout_restored = self.settings.restore_window(self)
        self._first_show = True
        self._update_actions()
        QTimer.singleShot(0, self.commands.probe_devices)

    # ----- layout ----------------------------------------------------------------------------
    def _build_panels(self, enable_vtk: bool | None) -> None:
        opacity = self.settings.overlay_opacity
        self.image_panel = ImagePanel(opacity)
        self.cloud_panel = CloudPanel(enable_vtk)
        self.fused_panel = FusedPanel(opacity)
        self.views_2d: list[ImageView2D] = [self.image_panel, self.fused_panel]
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.setObjectName("panelSplitter")
        splitter.setHandleWidth(4)
        splitter.setChildrenCollapsible(False)
        for panel in (self.image_panel, self.cloud_panel, self.fused_panel):
            splitter.addWidget(panel)
            splitter.setStretchFactor(splitter.indexOf(panel), 1)
        self.panel_splitter = splitter
        self.setCentralWidget(splitter)

    def _build_docks(self) -> None:
        self.sample_list = SampleListPanel(self.session)
        self.inspector = InspectorPanel()
        self.threshold_panel = ThresholdPanel()
        self.curves_panel = CurvesPanel()
        area = Qt.DockWidgetArea
        left, right = area.LeftDockWidgetArea, area.RightDockWidgetArea
        self.samples_dock = make_dock(self, "Samples", "samplesDock", self.sample_list, left)
        self.inspector_dock = make_dock(
            self, "Inspector", "inspectorDock", self.inspector, right, scroll=True
        )
        self.threshold_dock = make_dock(
            self, "Threshold", "thresholdDock", self.threshold_panel, right, scroll=True
        )
        self.metrics_dock = make_dock(
            self, "Metrics", "metricsDock", self.curves_panel, area.BottomDockWidgetArea
        )
        self.docks = [
            self.samples_dock,
            self.inspector_dock,
            self.threshold_dock,
            self.metrics_dock,
        ]
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._first_show:
            self._first_show = False
            if not self._layout_restored:
                QTimer.singleShot(0, self.default_layout)

    def default_layout(self) -> None:
        default_layout(self)

    # ----- wiring ----------------------------------------------------------------------------
    def _wire(self) -> None:
        session, events = self.session, self.session.events
        for panel in (self.image_panel, self.fused_panel, self.cloud_panel):
            panel.bind(session)
        self.inspector.bind(session)
        self.threshold_panel.bind(session)
        events.closing.connect(self.reset_views_for_new_data)
        events.dataset.connect(self._on_dataset)
        events.model.connect(self._on_model)
        events.scored.connect(self._on_scored)
        events.selected.connect(self._on_selected)
        events.selection.connect(self._on_selection)
        self.loader.loaded.connect(session.show_sample)
        self.loader.failed.connect(lambda _ref, text: self.show_error("Cannot load sample", text))
        self.background.failed.connect(lambda text: self.show_error("Regions", text))
        self.linked = LinkedViews(self.views_2d, self.cloud_panel)
        for view in self.views_2d:
            view.hovered.connect(self.hover)
            view.clicked.connect(self.inspect_pixel)
        self.cloud_panel.picked.connect(self.inspect_pixel)
        self.image_panel.opacity_slider.valueChanged.connect(
            lambda v: setattr(self.settings, "overlay_opacity", v / 100.0)
        )
        self.curves_panel.recompute_requested.connect(self.commands.compute_metrics)
        self.commands.devices_found.connect(self._on_devices)
        events.scored.connect(lambda ref, p: self.status_fields.show_time(p.timings_ms))
        self.commands.inference_finished.connect(self._on_scoring_finished)
        self.commands.mismatch_found.connect(self._on_mismatch)

    def _on_dataset(self, dataset: DatasetIndex) -> None:
        self._update_title()
        message = f"Opened {len(dataset)} samples from {dataset.root}"
        if dataset.problems:
            message += f" · {len(dataset.problems)} file(s) skipped: {dataset.problems[0]}"
            self.statusBar().setToolTip("\n".join(dataset.problems[:30]))
        self.notify(message, 15000)
        self._update_actions()

    def _on_model(self, model: api.Model) -> None:
        session = self.session
        label, details = api.model_identity(model)
        self.status_fields.show_model(label, details, session.model_path, session.device_text)
        captions = api.map_captions(model)
        self.image_panel.set_caption(captions["rgb"])
        self.fused_panel.set_caption(captions["fused"])
        self.cloud_panel.set_caption(captions["cloud"])
        self.linked.set_levels(0.0, display_ceiling(session.thresholds.pixel))
        self._update_title()
        self._update_actions()

    def _on_scored(self, ref: SampleRef, _prediction: Prediction) -> None:
        self.prediction_arrived.emit(ref.key)

    def _on_scoring_finished(self, _outcome: str) -> None:
        if self.session.problems:
            self.statusBar().setToolTip("\n".join(self.session.problems[:30]))
        self._update_actions()

    def _on_devices(self, devices: list[tuple[str, str]]) -> None:
        if not self.session.device_text:
            self.status_fields.show_probed_device(devices)

    def _on_selected(self, ref: SampleRef | None) -> None:
        if ref is not None:
            self.loader.request(ref)

    def _on_selection(self, selection: Selection | None) -> None:
        if selection is None:
            self.selection_changed.emit(None)
        else:
            self.selection_changed.emit(selection.region or selection.scores)

    def _update_title(self) -> None:
        parts, session = [APP_TITLE], self.session
        if session.dataset is not None:
            name = session.dataset.category or session.dataset.root.name
            parts.append(f"{name} (demo)" if session.dataset_is_demo else name)
        if session.model is not None:
            parts.append(f"model: {api.model_identity(session.model)[0]}")
        self.setWindowTitle(" — ".join(parts))

    def _update_actions(self) -> None:
        has_model, has_data = self.session.model is not None, self.session.dataset is not None
        self.menu_actions["rescore"].setEnabled(has_model and has_data)
        self.menu_actions["export"].setEnabled(has_model and has_data)
        self.menu_actions["model_info"].setEnabled(has_model)

    # ----- linked views ----------------------------------------------------------------------
    def reset_views_for_new_data(self) -> None:
        """Another folder (or the demo) is coming: nothing of the previous one stays on screen.

        The session drops the shown sample and the selection; the views forget their zoom
        (a cleared view fits its next image), crosshair and camera, the loader its samples.
        """
        self.loader.clear()
        self.linked.set_crosshair(-1, -1)
        self.status_fields.pixel_label.setText("")
        for view in self.views_2d:
            view.clear()
        self.cloud_panel.forget_view()

    def reset_view(self) -> None:
        """Back to the whole sample in every view (2D zoom and 3D camera)."""
        for view in self.views_2d:
            view.reset_zoom()
        self.cloud_panel.reset_camera()

    def inspect_pixel(self, row: int, col: int) -> Region | dict[str, float] | None:
        """What a click does: select the region under the pixel, else show its local scores."""
        view = self.session.view
        if view.sample is not None and view.prediction is None:
            self.notify("This sample has not been scored yet")
        return self.session.inspect_pixel(row, col)

    def hover(self, row: int, col: int) -> None:
        """Crosshair in every view and the pixel's scores in the status bar."""
        self.linked.set_crosshair(row, col)
        self.status_fields.pixel_label.setText(pixel_text(self.session.view, row, col))

    # ----- messages and closing ----------------------------------------------------------
    def show_error(self, title: str, message: str) -> None:
        """One-line error to the user; the window and its data stay as they were."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        self.error_shown.emit(message)
        if self.interactive:
            QMessageBox.warning(self, title, message)
        else:
            print(f"mdss-gui: {title}: {message}", file=sys.stderr)

    def _on_mismatch(self, problem: str) -> None:
        """The model and the folder are of different categories: ask, never score silently."""
        self.last_error = problem
        self.statusBar().showMessage(f"Not scored: {problem}", 30000)
        self.error_shown.emit(problem)
        if self.interactive:
            ask_about_mismatch(self, problem)
        else:
            print(f"mdss-gui: not scored: {problem}", file=sys.stderr)

    def notify(self, message: str, ms: int = 8000) -> None:
        self.statusBar().showMessage(message, ms)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        dialog = self.commands.train_dialog
        if dialog is not None and dialog.running:
            if self.interactive:
                answer = QMessageBox.question(
                    self, "Training in progress", "A model is training. Cancel it and quit?"
                )
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
            dialog.cancel_training()
        self.settings.save_window(self)
        self.settings.sync()
        self.commands.tasks.shutdown()
        self.background.shutdown()
        self.cloud_panel.shutdown()
        if dialog is not None:
            dialog.close()
        super().closeEvent(event)
