"""The inspector's main window: sample list, linked 2D/3D panels, inspector, thresholds, metrics.

All long work (indexing, loading pixels, inference, training, metrics, export) runs in
background tasks; this module only reacts to their signals on the UI thread.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QToolBar,
    QWidget,
)

from mdss_app import style
from mdss_app.dialogs.train_dialog import FALLBACK_DEVICES, MODEL_FILTER, TrainDialog
from mdss_app.panels.cloud_panel import CloudPanel
from mdss_app.panels.curves_panel import CurvesPanel
from mdss_app.panels.fused_panel import FusedPanel
from mdss_app.panels.image_panel import ImagePanel
from mdss_app.panels.image_view import ImageView2D
from mdss_app.panels.inspector import InspectorPanel
from mdss_app.panels.overlays import display_ceiling
from mdss_app.panels.sample_list import SampleListPanel
from mdss_app.panels.threshold_panel import ThresholdPanel
from mdss_app.panels.view_link import ViewLink
from mdss_app.sample_loader import SampleLoader
from mdss_app.settings import AppSettings
from mdss_app.status import TaskStatus
from mdss_app.workers import Task, TaskContext, TaskRegistry
from mdss_core import api
from mdss_core.api import DatasetIndex, Prediction, Region, Sample, SampleRef

APP_TITLE = "mdss inspector"


def score_job(model: Any, refs: list[SampleRef], ctx: TaskContext) -> list[str]:
    """Score ``refs``, emitting ``(ref, prediction)``; returns the skipped samples' messages."""
    problems = []
    for item in api.score_folder(model, refs, ctx.progress, ctx.cancel):
        if item.error is not None:
            problems.append(str(item.error))
        else:
            ctx.emit((item.ref, item.prediction))
    return problems


class MainWindow(QMainWindow):
    # Signals for tests, the screenshot mode and anything else that waits on the window.
    dataset_loaded = Signal(object)  # DatasetIndex
    model_changed = Signal(object)  # model
    prediction_arrived = Signal(str)  # sample key
    inference_finished = Signal(str)  # outcome: "done" | "cancelled" | "failed"
    sample_shown = Signal(str)  # key of the sample now displayed
    selection_changed = Signal(object)  # Region | dict of local scores | None
    metrics_updated = Signal(object)  # EvaluationReport | None
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
        self.tasks = TaskRegistry(self)
        self.loader = SampleLoader(self.tasks, self)
        self.loader.loaded.connect(self._on_sample_loaded)
        self.loader.failed.connect(self._on_sample_failed)

        self.dataset: DatasetIndex | None = None
        self.dataset_is_demo = False
        self.model: Any = None
        self.model_path = ""
        self.device_text = ""
        self.predictions: dict[str, Prediction] = {}
        self.current_ref: SampleRef | None = None
        self.current_sample: Sample | None = None
        self.current_prediction: Prediction | None = None
        self.selected_pixel: tuple[int, int] | None = None
        self.pixel_threshold = math.nan
        self.image_threshold = math.nan
        self.devices: list[tuple[str, str]] = list(FALLBACK_DEVICES)
        self.inference_task: Task | None = None
        self.inference_problems: list[str] = []
        self.metrics_task: Task | None = None
        self.train_dialog: TrainDialog | None = None
        self.last_error = ""
        self.model_pending = False
        self._pending_select: str | None = None

        self.setWindowTitle(APP_TITLE)
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks
        )
        self._build_panels(enable_vtk)
        self._build_docks()
        self._build_actions()
        self._build_status_bar()
        self._link_panels()
        self.resize(1680, 1020)
        self._layout_restored = self.settings.restore_window(self)
        self._first_show = True
        self._update_actions()
        QTimer.singleShot(0, self._probe_devices)

    # =========================================================================================
    # construction
    # =========================================================================================
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

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.sample_list = SampleListPanel()
        self.inspector = InspectorPanel()
        self.threshold_panel = ThresholdPanel()
        self.curves_panel = CurvesPanel()
        left, right = Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
        self.samples_dock = self._dock("Samples", "samplesDock", self.sample_list, left)
        self.inspector_dock = self._dock("Inspector", "inspectorDock", self.inspector, right)
        self.threshold_dock = self._dock("Threshold", "thresholdDock", self.threshold_panel, right)
        self.metrics_dock = self._dock(
            "Metrics", "metricsDock", self.curves_panel, Qt.DockWidgetArea.BottomDockWidgetArea
        )
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)

        self.sample_list.current_changed.connect(self._on_current_ref)
        self.threshold_panel.pixel_threshold_changed.connect(self.set_pixel_threshold)
        self.threshold_panel.image_threshold_changed.connect(self.set_image_threshold)
        self.curves_panel.recompute_requested.connect(self.compute_metrics)

    def _action(
        self,
        text: str,
        slot,
        shortcut: str | QKeySequence | None = None,
        icon: str = "",
        tip: str = "",
    ) -> QAction:
        action = QAction(style.icon(icon) if icon else style.icon("blank"), text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.open_folder_action = self._action(
            "&Open folder…", self.choose_folder, QKeySequence.StandardKey.Open, "folder",
            "Open an MVTec 3D-AD category, a split or a folder of samples",
        )  # fmt: skip
        self.open_demo_action = self._action(
            "Open &demo", self.start_demo, None, "demo", "Load the built-in demo category"
        )
        self.export_action = self._action(
            "&Export results…", self.choose_export_folder, "Ctrl+E", "export",
            "Write PNG/TIFF maps per sample and a CSV of scores and decisions",
        )  # fmt: skip
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.open_model_action = self._action(
            "Open &model…", self.choose_model, "Ctrl+M", "model", "Load a trained model file"
        )
        self.train_action = self._action(
            "&Train…", self.show_train_dialog, "Ctrl+T", "train", "Train a model on a dataset"
        )
        self.import_teacher_action = self._action(
            "Import &teacher…", self.choose_teacher, None, "",
            "Validate a teacher weight file and use it for the next training",
        )  # fmt: skip
        self.rescore_action = self._action(
            "&Score folder", self.start_inference, "F5", "run", "Run the model over the samples"
        )
        self.model_info_action = self._action("Model &info", self.show_model_info)
        self.reset_view_action = self._action(
            "Reset 3D view", self.cloud_panel.reset_camera, "R", "", "Look at the whole object"
        )
        self.about_action = self._action("&About", self.show_about)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for a in (self.open_folder_action, self.open_demo_action, None, self.export_action, None,
                  self.quit_action):  # fmt: skip
            file_menu.addSeparator() if a is None else file_menu.addAction(a)
        model_menu = menu.addMenu("&Model")
        for a in (self.open_model_action, self.train_action, self.import_teacher_action, None,
                  self.rescore_action, self.model_info_action):  # fmt: skip
            model_menu.addSeparator() if a is None else model_menu.addAction(a)
        view_menu = menu.addMenu("&View")
        for dock in (
            self.samples_dock,
            self.inspector_dock,
            self.threshold_dock,
            self.metrics_dock,
        ):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.reset_view_action)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = QToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setIconSize(QSize(18, 18))
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for a in (self.open_folder_action, self.open_model_action, self.train_action,
                  self.rescore_action, self.export_action):  # fmt: skip
            toolbar.addAction(a)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
        self.toolbar = toolbar

        # A/D walk the list like up/down (a QLineEdit with focus still receives the letters).
        QShortcut(QKeySequence("A"), self, activated=lambda: self.sample_list.step(-1))
        QShortcut(QKeySequence("D"), self, activated=lambda: self.sample_list.step(1))

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.task_status = TaskStatus()
        self.pixel_label = QLabel("")
        self.pixel_label.setObjectName("muted")
        self.device_label = QLabel("Device: —")
        self.model_label = QLabel("Model: none")
        self.time_label = QLabel("Inference: —")
        for label in (self.device_label, self.model_label, self.time_label):
            label.setObjectName("statusField")
        bar.addWidget(self.pixel_label, 1)
        bar.addPermanentWidget(self.task_status)
        for label in (self.device_label, self.model_label, self.time_label):
            bar.addPermanentWidget(label)

    def _link_panels(self) -> None:
        self.view_link = ViewLink(self.image_panel.view, self.fused_panel.view)
        for view in self.views_2d:
            view.hovered.connect(self._on_hover)
            view.clicked.connect(self.inspect_pixel)
            view.levels_changed.connect(self._sync_levels)
        self.cloud_panel.picked.connect(self.inspect_pixel)
        self.image_panel.opacity_slider.valueChanged.connect(
            lambda v: setattr(self.settings, "overlay_opacity", v / 100.0)
        )

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._first_show:
            self._first_show = False
            if not self._layout_restored:
                QTimer.singleShot(0, self.default_layout)

    def default_layout(self) -> None:
        """Dock sizes that suit a 1680×1020 window (docks only size once they are shown)."""
        horizontal, vertical = Qt.Orientation.Horizontal, Qt.Orientation.Vertical
        self.resizeDocks([self.samples_dock], [390], horizontal)
        self.resizeDocks([self.inspector_dock], [300], horizontal)
        self.resizeDocks([self.metrics_dock], [300], vertical)
        self.resizeDocks([self.inspector_dock, self.threshold_dock], [470, 380], vertical)
        sizes = self.panel_splitter.sizes()
        if sum(sizes):
            self.panel_splitter.setSizes([sum(sizes) // 3] * 3)

    # =========================================================================================
    # messages
    # =========================================================================================
    def show_error(self, title: str, message: str) -> None:
        """One-line error to the user; the window and its data stay as they were."""
        self.last_error = message
        self.statusBar().showMessage(f"{title}: {message}", 15000)
        self.error_shown.emit(message)
        if self.interactive:
            QMessageBox.warning(self, title, message)
        else:
            import sys

            print(f"mdss-gui: {title}: {message}", file=sys.stderr)

    def notify(self, message: str, ms: int = 8000) -> None:
        self.statusBar().showMessage(message, ms)

    def _run(self, task: Task, status_title: str | None = None) -> Task:
        if status_title:
            self.task_status.track(task, status_title)
        self.tasks.start(task)
        return task

    # =========================================================================================
    # devices
    # =========================================================================================
    def _probe_devices(self) -> None:
        task = Task("devices", lambda _ctx: api.available_devices(), self)
        task.done.connect(self._on_devices)
        self._run(task)

    def _on_devices(self, devices: list[tuple[str, str]]) -> None:
        self.devices = list(devices) or self.devices
        if self.train_dialog is not None:
            self.train_dialog.set_devices(self.devices)
        if not self.device_text and self.devices:
            label = self.devices[0][1]
            if label.startswith("Auto (") and label.endswith(")"):
                label = label[len("Auto (") : -1]  # what "auto" resolves to here
            self.device_label.setText(f"Device: {label}")

    # =========================================================================================
    # dataset
    # =========================================================================================
    def choose_folder(self) -> None:
        start = self.settings.last_folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Open sample folder", start)
        if folder:
            self.open_folder(folder)

    def open_folder(self, path: str | Path, demo: bool = False) -> Task:
        task = Task("open folder", lambda _ctx, p=str(path): api.open_folder(p), self)
        task.done.connect(lambda index, d=demo: self.set_dataset(index, demo=d))
        task.failed.connect(lambda message: self.show_error("Cannot open folder", message))
        return self._run(task, "Opening folder")

    def set_dataset(self, dataset: DatasetIndex, demo: bool = False) -> None:
        self.cancel_inference()
        self.dataset = dataset
        self.dataset_is_demo = demo
        self.predictions.clear()
        self.loader.clear()
        self.current_ref = self.current_sample = self.current_prediction = None
        self.curves_panel.clear()
        self.threshold_panel.set_image_scores([])
        default_split = "test" if any(r.split == "test" for r in dataset.refs) else None
        self.sample_list.set_refs(list(dataset.refs), default_split)
        if not demo:
            self.settings.last_folder = str(dataset.root)
        self._update_title()
        message = f"Opened {len(dataset)} samples from {dataset.root}"
        if dataset.problems:
            message += f" · {len(dataset.problems)} file(s) skipped: {dataset.problems[0]}"
            self.statusBar().setToolTip("\n".join(dataset.problems[:30]))
        self.notify(message, 15000)
        self.sample_list.step(0)
        self.dataset_loaded.emit(dataset)
        self._update_actions()
        if self.model is not None:
            self.start_inference()

    def _update_title(self) -> None:
        parts = [APP_TITLE]
        if self.dataset is not None:
            name = self.dataset.category or self.dataset.root.name
            parts.append(f"{name} (demo)" if self.dataset_is_demo else name)
        if self.model is not None:
            parts.append(f"model: {self.model.name}")
        self.setWindowTitle(" — ".join(parts))

    # =========================================================================================
    # model
    # =========================================================================================
    def choose_model(self) -> None:
        start = str(Path(self.settings.last_model).parent) if self.settings.last_model else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open model", start, MODEL_FILTER)
        if path:
            self.open_model(path)

    def open_model(self, path: str | Path) -> Task:
        def job(_ctx: TaskContext, p: str = str(path)) -> tuple[Any, str, str]:
            model = api.load_model(p)
            return model, p, api.device_label(model.device)

        task = Task("load model", job, self)
        self.model_pending = True
        task.finished.connect(lambda: setattr(self, "model_pending", False))
        task.done.connect(lambda result: self.set_model(*result))
        task.failed.connect(lambda message: self.show_error("Cannot open model", message))
        return self._run(task, "Loading model")

    def set_model(self, model: Any, path: str = "", device_text: str = "") -> None:
        """Use ``model`` from now on: thresholds reset to its own, the folder is re-scored."""
        self.model = model
        self.model_path = str(path)
        if path and not self.dataset_is_demo:
            self.settings.last_model = str(path)
        self.device_text = device_text or str(getattr(model, "device", ""))
        self.device_label.setText(f"Device: {self.device_text}")
        self.model_label.setText(f"Model: {model.name}")
        self.model_label.setToolTip(str(path))
        self.pixel_threshold = float(model.pixel_threshold)
        self.image_threshold = float(model.image_threshold)
        self.threshold_panel.blockSignals(True)
        self.threshold_panel.set_defaults(self.pixel_threshold, self.image_threshold)
        self.threshold_panel.blockSignals(False)
        self.sample_list.model.set_image_threshold(self.image_threshold)
        self._apply_levels(0.0, display_ceiling(self.pixel_threshold))
        self._update_title()
        self._update_actions()
        self.model_changed.emit(model)
        self.notify(f"Model '{model.name}' loaded ({self.device_text})")
        if self.dataset is not None:
            self.start_inference()

    def show_model_info(self) -> None:
        if self.model is None:
            self.show_error("No model", "open or train a model first")
            return
        info = self.model.info()
        lines = [f"<b>{info.get('name', '')}</b> — {self.model_path}"]
        for key in ("preset", "device", "image_threshold", "pixel_threshold"):
            lines.append(f"{key}: {info.get(key)}")
        teacher = info.get("teacher") or {}
        lines.append(f"teacher: {teacher.get('kind', '')} {teacher.get('name', '')}".strip())
        training = info.get("training") or {}
        if training:
            lines.append(
                f"trained on {training.get('n_train', '?')} samples "
                f"({training.get('category', '')}) in {training.get('seconds', '?')} s"
            )
        QMessageBox.information(self, "Model", "<br>".join(lines))

    # ----- teacher ---------------------------------------------------------------------------
    def choose_teacher(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Import teacher", "", "Teacher weights (*.pth *.pt *.safetensors);;All files (*)"
        )
        if path:
            self.import_teacher(path)

    def import_teacher(self, path: str | Path) -> Task:
        def job(_ctx: TaskContext, p: str = str(path)) -> tuple[str, dict]:
            return p, api.check_teacher_file(p)

        task = Task("import teacher", job, self)
        task.done.connect(lambda result: self._on_teacher(*result))
        task.failed.connect(lambda message: self.show_error("Cannot use teacher", message))
        return self._run(task, "Checking teacher")

    def _on_teacher(self, path: str, origin: dict) -> None:
        self.settings.teacher_path = path
        if self.train_dialog is not None:
            self.train_dialog.set_teacher(path)
        kind = f" ({origin.get('format', '')} {origin.get('size', '')})".rstrip(" ()")
        self.notify(f"Teacher {Path(path).name}{kind} will be used for the next training")

    # ----- training --------------------------------------------------------------------------
    def show_train_dialog(self) -> TrainDialog:
        if self.train_dialog is None:
            folder = ""
            if self.dataset is not None:
                folder = str(self.dataset.root)
            output = ""
            if folder:
                name = (self.dataset.category if self.dataset else "") or Path(folder).name
                output = str(Path(folder).parent / f"{name}{api.MODEL_SUFFIX}")
            self.train_dialog = TrainDialog(
                folder=folder,
                output=output,
                teacher=self.settings.teacher_path,
                devices=self.devices,
                start_task=self.tasks.start,
                parent=self,
            )
            self.train_dialog.trained.connect(self._on_trained)
            self.train_dialog.task_started.connect(
                lambda task: self.task_status.track(task, "Training")
            )
        self.train_dialog.show()
        self.train_dialog.raise_()
        return self.train_dialog

    def _on_trained(self, model: Any, path: str, device_text: str) -> None:
        self.set_model(model, path, device_text)

    # ----- demo ------------------------------------------------------------------------------
    def start_demo(self) -> Task:
        """Generate (once) and open the demo category; use the shipped or cached demo model,
        else train one in the background (preset ``fast``) while the samples are browsable."""
        task = Task("demo data", lambda ctx: api.demo_dataset(), self)
        task.done.connect(self._on_demo_data)
        task.failed.connect(lambda message: self.show_error("Demo unavailable", message))
        return self._run(task, "Preparing demo")

    def _on_demo_data(self, path: Path) -> None:
        opened = self.open_folder(path, demo=True)
        if self.model is not None or self.model_pending:
            return
        model_path = api.demo_model_path()
        if model_path is not None:
            opened.done.connect(lambda _r, p=str(model_path): self.open_model(p))
        else:
            opened.done.connect(lambda _r, p=path: self.train_demo_model(p))

    def train_demo_model(self, folder: str | Path, preset: str = "fast") -> Task:
        from mdss_app.dialogs.train_dialog import train_job

        target = api.demo_model_target()
        target.parent.mkdir(parents=True, exist_ok=True)
        job = train_job(str(folder), None, preset, "auto", None, str(target))
        task = Task("demo training", job, self)
        task.done.connect(lambda result: self.set_model(*result))
        task.failed.connect(lambda message: self.show_error("Demo training failed", message))
        task.cancelled.connect(lambda _m: self.notify("Demo training cancelled"))
        self.notify("No demo model yet: training one in the background (preset 'fast')", 20000)
        return self._run(task, "Training demo model")

    # =========================================================================================
    # inference
    # =========================================================================================
    @property
    def inference_running(self) -> bool:
        return self.inference_task is not None and self.inference_task.running

    def cancel_inference(self) -> None:
        if self.inference_running:
            self.inference_task.cancel()
        self.inference_task = None

    def start_inference(self) -> Task | None:
        if self.model is None or self.dataset is None:
            self.show_error("Cannot score", "open a folder and a model first")
            return None
        self.cancel_inference()
        self.predictions.clear()
        self.sample_list.model.clear_scores()
        self.threshold_panel.set_image_scores([])
        self.curves_panel.clear("Scoring…")
        self.inference_problems = []
        refs = api.refs_to_score(self.dataset)
        if self.current_ref is not None and self.current_ref in refs:
            refs.remove(self.current_ref)  # what the user looks at comes first
            refs.insert(0, self.current_ref)
        if self.current_sample is not None:
            self._show_current()  # drop the old model's maps from the panels
        model = self.model
        task = Task("inference", lambda ctx, m=model, r=refs: score_job(m, r, ctx), self)
        task.item.connect(self._on_prediction)
        task.done.connect(self._on_inference_problems)
        task.finished.connect(lambda t=task: self._on_inference_finished(t))
        task.failed.connect(lambda message: self.show_error("Inference failed", message))
        self.inference_task = task
        return self._run(task, f"Scoring {len(refs)} samples")

    def _on_prediction(self, item: tuple[SampleRef, Prediction]) -> None:
        ref, prediction = item
        if self.dataset is None:
            return
        prediction = api.with_thresholds(prediction, image_threshold=self.image_threshold)
        self.predictions[ref.key] = prediction
        self.sample_list.set_scores(
            ref.key, prediction.score_rgb, prediction.score_3d, prediction.score_fused
        )
        self._refresh_histogram()
        total = prediction.timings_ms.get("total")
        if total is not None:
            self.time_label.setText(f"Inference: {total:.0f} ms")
        if self.current_ref is not None and ref.key == self.current_ref.key:
            self._show_current()
        self.prediction_arrived.emit(ref.key)

    def _on_inference_problems(self, problems: list[str]) -> None:
        self.inference_problems = list(problems or [])

    def _on_inference_finished(self, task: Task) -> None:
        if task is self.inference_task:
            self.inference_task = None
        outcome = task.outcome
        if outcome == "done":
            message = f"Scored {len(self.predictions)} samples"
            if self.inference_problems:
                message += f" · {len(self.inference_problems)} skipped: "
                message += self.inference_problems[0]
                self.statusBar().setToolTip("\n".join(self.inference_problems[:30]))
            self.notify(message, 20000)
        elif outcome == "cancelled":
            self.notify(f"Scoring cancelled after {len(self.predictions)} samples")
        self._update_actions()
        self.inference_finished.emit(outcome)
        if self.predictions and outcome in ("done", "cancelled"):
            self.compute_metrics()
        else:
            self.curves_panel.clear(self._unscored_message(task))

    def _unscored_message(self, task: Task) -> str:
        """What the metrics panel says instead of "Scoring…" when scoring produced nothing."""
        if task.outcome == "failed":
            return f"Scoring failed: {task.error}"
        if task.outcome == "cancelled":
            return "Scoring cancelled before any sample was scored."
        if self.inference_problems:
            return f"No sample could be scored: {self.inference_problems[0]}"
        return "No sample to score."

    def _refresh_histogram(self) -> None:
        refs = {r.key: r for r in self.dataset.refs} if self.dataset else {}
        scores = [
            (p.score_fused, refs[k].label if k in refs else -1) for k, p in self.predictions.items()
        ]
        self.threshold_panel.set_image_scores(scores)

    # ----- metrics ---------------------------------------------------------------------------
    @property
    def metrics_running(self) -> bool:
        return self.metrics_task is not None and self.metrics_task.running

    def scored_items(self) -> list[tuple[SampleRef, Prediction]]:
        if self.dataset is None:
            return []
        return [
            (r, self.predictions[r.key]) for r in self.dataset.refs if r.key in self.predictions
        ]

    def compute_metrics(self) -> Task | None:
        items = self.scored_items()
        if not items:
            self.curves_panel.clear()
            return None
        if self.metrics_running:
            self.metrics_task.cancel()
        self.curves_panel.set_busy("Computing metrics…")
        task = Task(
            "metrics", lambda ctx, it=items: api.evaluate(it, ctx.progress, ctx.cancel), self
        )
        task.done.connect(self._on_metrics)
        task.failed.connect(lambda message: self.curves_panel.set_message(f"Metrics: {message}"))
        self.metrics_task = task
        return self._run(task)

    def _on_metrics(self, report: Any) -> None:
        labelled = 0 if report is None else len(report.samples)
        self.curves_panel.show_report(report, labelled)
        self.metrics_updated.emit(report)

    # =========================================================================================
    # current sample
    # =========================================================================================
    def _on_current_ref(self, ref: SampleRef | None) -> None:
        self.current_ref = ref
        if ref is None:
            return
        self.loader.request(ref)

    def _on_sample_loaded(self, sample: Sample) -> None:
        if self.current_ref is None or sample.ref.key != self.current_ref.key:
            return
        self.current_sample = sample
        self._show_current()

    def _on_sample_failed(self, ref: SampleRef, message: str) -> None:
        self.show_error("Cannot load sample", message)

    def _rethreshold(self, prediction: Prediction) -> Prediction:
        """The prediction with regions at the window's pixel threshold (kept for the sample)."""
        if prediction.pixel_threshold == self.pixel_threshold or not math.isfinite(
            self.pixel_threshold
        ):
            return prediction
        area = api.pixel_area_mm2(self.current_sample.xyz, prediction.object_mask)
        regions = api.regions_at(prediction, self.pixel_threshold, area)
        changed = replace(prediction, regions=regions)
        self.predictions[prediction.sample_key] = changed
        return changed

    def _show_current(self) -> None:
        sample = self.current_sample
        if sample is None:
            return
        key = sample.ref.key
        prediction = self.predictions.get(key)
        if prediction is not None:
            prediction = self._rethreshold(prediction)
        same_sample = self.current_prediction is not None and (
            self.current_prediction.sample_key == key
        )
        self.current_prediction = prediction
        for panel in (self.image_panel, self.fused_panel):
            panel.show_sample(sample)
        self.image_panel.show_prediction(prediction)
        self.fused_panel.show_prediction(prediction, self.pixel_threshold)
        self.cloud_panel.show_sample(sample, prediction)
        self.inspector.show_sample(key, sample.label, prediction)
        if not same_sample:
            self.clear_selection()
        self.sample_shown.emit(key)

    # =========================================================================================
    # selection / linking
    # =========================================================================================
    def clear_selection(self) -> None:
        self.selected_pixel = None
        self.inspector.clear_selection()
        for view in self.views_2d:
            view.set_selection(None)
        self.cloud_panel.highlight_region(None)

    def inspect_pixel(self, row: int, col: int) -> Region | dict[str, float] | None:
        """What a click does: select the region under the pixel, else show its local scores."""
        prediction, sample = self.current_prediction, self.current_sample
        if sample is None:
            return None
        self.selected_pixel = (row, col)
        if prediction is None:
            self.notify("This sample has not been scored yet")
            return None
        region = prediction.regions.at(row, col)
        if region is not None:
            mask = prediction.regions.mask(region)
            points = sample.xyz[mask & prediction.object_mask]
            centre = tuple(points.mean(axis=0) * 1000.0) if len(points) else None
            self.inspector.show_region(region, centre)
            for view in self.views_2d:
                view.set_selection(mask)
            self.cloud_panel.highlight_region(mask, fly=True)
            self.selection_changed.emit(region)
            return region
        scores = api.local_scores(prediction, row, col)
        xyz = sample.xyz[row, col]
        self.inspector.show_local(row, col, scores, tuple(xyz * 1000.0) if xyz.any() else None)
        for view in self.views_2d:
            view.set_selection(None)
        self.cloud_panel.highlight_region(None)
        self.cloud_panel.set_marker(row, col)
        self.selection_changed.emit(scores)
        return scores

    def _on_hover(self, row: int, col: int) -> None:
        for view in self.views_2d:
            view.set_crosshair(row, col)
        self.cloud_panel.set_marker(row, col)
        sample, prediction = self.current_sample, self.current_prediction
        if sample is None or row < 0:
            self.pixel_label.setText("")
            return
        text = f"pixel ({row}, {col})"
        z = float(sample.xyz[row, col, 2])
        if z:
            text += f" · z {z * 1000:.1f} mm"
        if prediction is not None:
            text += f" · fused {prediction.fused_map[row, col]:.4g}"
            text += f" · RGB {prediction.rgb_map_aligned[row, col]:.4g}"
            text += f" · 3D {prediction.map_3d[row, col]:.4g}"
        self.pixel_label.setText(text)

    def _sync_levels(self, low: float, high: float) -> None:
        """Dragging one colour bar rescales every panel: the same colour means the same score."""
        self._apply_levels(low, high)

    def _apply_levels(self, low: float, high: float) -> None:
        for view in self.views_2d:
            if view.levels() != (low, high):
                view.set_levels(low, high)
        self.cloud_panel.set_levels(low, high)

    # =========================================================================================
    # thresholds
    # =========================================================================================
    def set_pixel_threshold(self, value: float) -> None:
        if self.threshold_panel.pixel_threshold != value:
            self.threshold_panel.set_pixel_threshold(value)  # its signal calls back here
            return
        self.pixel_threshold = float(value)
        prediction = self.current_prediction
        if prediction is not None:
            prediction = self.current_prediction = self._rethreshold(prediction)
            self.fused_panel.set_threshold(self.pixel_threshold)
            self.inspector.show_sample(prediction.sample_key, self.current_sample.label, prediction)
            if self.selected_pixel is not None:
                self.inspect_pixel(*self.selected_pixel)

    def set_image_threshold(self, value: float) -> None:
        if self.threshold_panel.image_threshold != value:
            self.threshold_panel.set_image_threshold(value)  # its signal calls back here
            return
        self.image_threshold = float(value)
        for key, prediction in self.predictions.items():
            self.predictions[key] = api.with_thresholds(
                prediction, image_threshold=self.image_threshold
            )
        if self.current_prediction is not None:
            self.current_prediction = self.predictions[self.current_prediction.sample_key]
        self.sample_list.model.set_image_threshold(self.image_threshold)
        if self.current_prediction is not None and self.current_sample is not None:
            self.inspector.show_sample(
                self.current_prediction.sample_key,
                self.current_sample.label,
                self.current_prediction,
            )

    # =========================================================================================
    # export
    # =========================================================================================
    def choose_export_folder(self) -> None:
        if not self.predictions:
            self.show_error("Nothing to export", "score the samples first (open a model)")
            return
        start = self.settings.last_folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Export results to", start)
        if folder:
            self.export_results(folder)

    def export_results(self, folder: str | Path) -> Task | None:
        items = self.scored_items()
        if not items:
            self.show_error("Nothing to export", "score the samples first (open a model)")
            return None
        pixel, image = self.pixel_threshold, self.image_threshold

        def job(ctx: TaskContext) -> Path:
            return api.export_results(items, folder, pixel, image, ctx.progress, ctx.cancel)

        task = Task("export", job, self)
        task.done.connect(
            lambda path: self.notify(f"Exported {len(items)} samples → {path}", 15000)
        )
        task.failed.connect(lambda message: self.show_error("Export failed", message))
        return self._run(task, "Exporting")

    # =========================================================================================
    # misc
    # =========================================================================================
    def _update_actions(self) -> None:
        has_model, has_data = self.model is not None, self.dataset is not None
        self.rescore_action.setEnabled(has_model and has_data)
        self.export_action.setEnabled(has_model and has_data)
        self.model_info_action.setEnabled(has_model)

    def show_about(self) -> None:
        QMessageBox.about(
            self,
            "About mdss",
            "<b>mdss inspector</b><br>Memoryless multimodal (RGB + 3D) anomaly detection.<br>"
            "Keys: ↑/↓ or A/D move through samples · click a pixel or a 3D point to inspect it"
            " · R resets the 3D view · F5 re-scores the folder.",
        )

    def top_sample(self) -> str | None:
        """Key of the highest fused image score (what the screenshot shows)."""
        if not self.predictions:
            return None
        return max(self.predictions, key=lambda k: self.predictions[k].score_fused)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.train_dialog is not None and self.train_dialog.running:
            if self.interactive:
                answer = QMessageBox.question(
                    self, "Training in progress", "A model is training. Cancel it and quit?"
                )
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
            self.train_dialog.cancel_training()
        self.settings.save_window(self)
        self.settings.sync()
        self.tasks.shutdown()
        self.cloud_panel.shutdown()
        if self.train_dialog is not None:
            self.train_dialog.close()
        super().closeEvent(event)
