"""Model → Train…: choose data, preset, device, teacher and output; watch training live.

The dialog starts a background :class:`Task` (fit, then save atomically) and shows its progress
per stage with an ETA and a loss curve per branch. Cancel stops training at the next step; the
window's current model and any existing file at the output path stay untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from mdss_app import style
from mdss_app.settings import free_path, workspace
from mdss_app.workers import Task, TaskContext
from mdss_core import api
from mdss_core.api import DataError, Progress

# Shown before the devices have been probed (probing imports torch, so it runs in a task).
FALLBACK_DEVICES: list[tuple[str, str]] = [("auto", "Auto"), ("cpu", "CPU")]
MODEL_FILTER = "MDSS model (*.mdss *.safetensors);;All files (*)"

PRESET_HELP = {
    "cpu": "cpu — real parts on a CPU, about 25 minutes per category (default)",
    "fast": "fast — a few minutes; a first look, weaker on real parts",
    "paper": "paper — the paper's settings (Table 1); hours on CPU, use a GPU",
    "tiny": "tiny — seconds; for trying the workflow, not for real inspection",
}
# Other detectors' presets where their text differs (times: ~220 real scans, 2 cores).
METHOD_PRESET_HELP = {
    ("crd", "cpu"): "cpu — real parts on a CPU, about 20–25 minutes per category (default)",
    ("dmgrd", "cpu"): "cpu — real parts on a CPU, about 20 minutes per category (default)",
    ("crd", "paper"): "paper — the paper's settings (200 epochs); use a GPU",
    ("dmgrd", "paper"): "paper — the paper's settings (10 000 steps); use a GPU",
}
# The loss curves each detector's training reports (LOSS_STAGES keys).
METHOD_STAGES = {"mdss": ("rgb", "geometry"), "crd": ("crd",), "dmgrd": ("dmgrd", "geometry")}
TEACHER_HELP = {
    "backbone": "ImageNet MobileNetV2 (built in, default)",
    "distilled": "PDN distilled from MobileNetV2 (built in, faster)",
    "random": "Random PDN (no pretraining; for comparison only)",
}
# Redrawing the loss plot is the costliest thing the UI does while a model trains (pyqtgraph
# paints in Python, holding the GIL the training thread needs): twice a second is enough.
PLOT_INTERVAL_MS = 500
LOSS_STAGES = {
    "rgb": ("RGB student", "#f28ad8"),
    "geometry": ("3D SDF", "#6fb6ff"),
    "crd": ("CRD RGB branch", "#ffb454"),
    "dmgrd": ("DM-GRD student", "#9be37a"),
}
STAGE_TEXT = {
    "prepare": "Preparing training samples",
    "prepare-val": "Preparing validation samples",
    "rgb": "Training the RGB student",
    "rgb-memory": "Keeping a memory of normal cells (normal image)",
    "geometry": "Training the 3D signed-distance network",
    "calibrate": "Calibrating fusion and thresholds",
    "teacher-features": "Computing the teacher's features",
    "crd": "Training the CRD branches (RGB and 3D image)",
    "dmgrd": "Training the DM-GRD student",
    "save": "Saving the model",
}


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class EtaTracker:
    """Remaining time of the current stage from its own pace (stages differ a lot in speed)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.stage = ""
        self._start = 0.0
        self._start_step = 0

    def update(self, p: Progress) -> float:
        now = self._clock()
        if p.stage != self.stage:
            self.stage, self._start, self._start_step = p.stage, now, p.step
            return math.nan
        done = p.step - self._start_step
        if done <= 0 or p.total <= 0:
            return math.nan
        return (now - self._start) / done * max(0, p.total - p.step)


def category_choices(folder: str | Path) -> list[str]:
    """Category names when ``folder`` is a dataset root holding several (else empty)."""
    names = api.category_names(folder)
    return names if len(names) > 1 else []


def train_job(
    folder: str,
    category: str | None,
    preset: str,
    device: str,
    teacher: str | None,
    output: str,
    extra_good: Sequence[str] = (),
    resume: bool = False,
    method: str = "mdss",
) -> Callable[[TaskContext], tuple[api.Model, Path, str]]:
    """The background job: index, fit (checkpointing beside ``output``; ``resume`` continues
    that checkpoint), save atomically, drop the checkpoint; returns ``(model, path, device)``.

    ``extra_good``: folders of samples marked as good, added to the training split."""

    def run(ctx: TaskContext) -> tuple[api.Model, Path, str]:
        dataset = api.open_folder(folder, category)
        if extra_good:
            dataset = api.with_extra_good(dataset, extra_good)
        model = api.fit_model(
            dataset,
            preset,
            method=method,
            teacher=teacher,
            device=device,
            progress=ctx.progress,
            cancel=ctx.cancel,
            checkpoint_for=output,
            resume=resume,
        )
        ctx.progress(Progress("save", 0, 1, output))
        saved = model.save(output)  # atomic: a failed write leaves any previous file
        api.remove_checkpoint(output)
        ctx.progress(Progress("save", 1, 1, output))
        return model, saved, api.device_label(model.device)

    return run


RESUME_STAGES = {
    "rgb": "RGB stage",
    "geometry": "3D stage",
    "crd": "CRD training",
    "dmgrd": "DM-GRD training",
    "calibrate": "calibration",
}


def resume_text(info: api.CheckpointInfo) -> str:
    stage = RESUME_STAGES.get(info.stage, info.stage)
    return f"Resume from checkpoint (step {info.done} of {info.total}, {stage})"


class TrainDialog(QDialog):
    """Non-modal: the main window stays usable while a model trains."""

    trained = Signal(object, str, str)  # model, saved path, device label
    task_started = Signal(object)  # Task (the main window mirrors it in its status bar)

    def __init__(
        self,
        folder: str = "",
        output: str = "",
        teacher: str = "",
        devices: list[tuple[str, str]] | None = None,
        start_task: Callable[[Task], Task] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Train a model")
        self.setMinimumWidth(640)
        self.task: Task | None = None
        self._start_task = start_task or (lambda t: t.start())
        self._eta = EtaTracker()
        self._loss: dict[str, tuple[list[float], list[float]]] = {}
        form = self._build_form(folder, output, teacher, devices)
        self._build_progress()
        self._method_changed()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addSpacing(6)
        layout.addWidget(self.stage_label)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.eta_label)
        layout.addWidget(self.loss_plot, 1)
        layout.addLayout(self._build_buttons())
        self._folder_changed()
        self.refresh_resume()

    def _build_form(
        self, folder: str, output: str, teacher: str, devices: list[tuple[str, str]] | None
    ) -> QFormLayout:
        self.folder_edit = QLineEdit(folder)
        self.folder_edit.setPlaceholderText(
            "MVTec 3D-AD category (train/validation/test) or dataset root"
        )
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse_folder)
        self.category_combo = QComboBox()
        self.category_combo.setToolTip("Category to train on (the folder holds several)")
        self.data_summary = QLabel("")
        self.data_summary.setObjectName("muted")
        self.folder_edit.editingFinished.connect(self._folder_changed)

        self._build_method_choice()

        self.device_combo = QComboBox()
        self.set_devices(devices or FALLBACK_DEVICES)

        self.teacher_combo = QComboBox()
        for name in api.teacher_names():
            self.teacher_combo.addItem(TEACHER_HELP.get(name, name), name)
        if teacher:
            self.teacher_combo.addItem(f"Imported: {Path(teacher).name}", teacher)
            self.teacher_combo.setCurrentIndex(self.teacher_combo.count() - 1)
        self.teacher_combo.addItem("Import a teacher file…", "__choose__")
        self.teacher_combo.activated.connect(self._teacher_activated)

        self.output_edit = QLineEdit(output)
        self.output_edit.setPlaceholderText(f"model file ({api.MODEL_SUFFIX})")
        save_as = QToolButton()
        save_as.setText("…")
        save_as.clicked.connect(self._browse_output)
        self.resume_check = QCheckBox()
        self.resume_check.setToolTip(
            "A cancelled training of this model left a checkpoint: continue it where it "
            "stopped (same data and settings), or untick to start over"
        )
        self.output_edit.textChanged.connect(self.refresh_resume)

        form = QFormLayout()
        form.addRow("Dataset folder", _row(self.folder_edit, browse))
        form.addRow("Category", self.category_combo)
        form.addRow("", self.data_summary)
        form.addRow("Method", self.method_combo)
        form.addRow("Preset", self.preset_combo)
        form.addRow("Device", self.device_combo)
        form.addRow("Teacher", self.teacher_combo)
        form.addRow("Save model as", _row(self.output_edit, save_as))
        self.marked_good_check = QCheckBox()  # shown by set_marked_good (app/feedback.py)
        self.marked_good_check.setVisible(False)
        self._marked_good: tuple[str, int] = ("", 0)
        form.addRow("", self.marked_good_check)
        form.addRow("", self.resume_check)
        return form

    def _build_progress(self) -> None:
        self.stage_label = QLabel("Ready.")
        self.stage_label.setObjectName("stageLabel")
        self.stage_label.setWordWrap(True)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.eta_label = QLabel("")
        self.eta_label.setObjectName("muted")
        self.loss_plot = pg.PlotWidget(title="Training loss")
        self.loss_plot.setMinimumHeight(180)
        self.loss_plot.setMenuEnabled(False)
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.showGrid(x=True, y=True, alpha=0.15)
        self.loss_plot.setLabel("bottom", "step")
        self.loss_plot.addLegend(offset=(-8, 8), labelTextSize="8pt")
        self.loss_plot.setClipToView(True)
        self.loss_plot.setDownsampling(auto=True, mode="peak")
        self.loss_curves = {
            stage: self.loss_plot.plot([], [], pen=pg.mkPen(colour, width=1.6), name=name)
            for stage, (name, colour) in LOSS_STAGES.items()
        }
        self._plot_timer = QTimer(self)
        self._plot_timer.setSingleShot(True)
        self._plot_timer.setInterval(PLOT_INTERVAL_MS)
        self._plot_timer.timeout.connect(self.redraw_loss)

    def _build_buttons(self) -> QHBoxLayout:
        self.train_button = QPushButton("Train")
        self.train_button.setDefault(True)
        self.train_button.clicked.connect(self.start_training)
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_training)
        self.close_button = QPushButton("Close")
        self.close_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.close_button)
        return buttons

    # ----- options ----------------------------------------------------------------------------
    def set_devices(self, devices: list[tuple[str, str]]) -> None:
        current = self.device_combo.currentData()
        self.device_combo.clear()
        for value, label in devices:
            self.device_combo.addItem(label, value)
        index = self.device_combo.findData(current) if current else -1
        self.device_combo.setCurrentIndex(max(0, index))

    def _build_method_choice(self) -> None:
        self.method_combo = QComboBox()
        for name, description in api.method_names():
            self.method_combo.addItem(description, name)
        self.method_combo.setToolTip("The detector; every one runs on the same data and views")
        self.preset_combo = QComboBox()  # filled by _method_changed: each method's presets
        self.method_combo.currentIndexChanged.connect(self._method_changed)

    def _method_changed(self) -> None:
        """Each detector has its own presets ("cpu" the default); only MDSS takes a teacher."""
        method = self.method_combo.currentData() or "mdss"
        self.preset_combo.clear()
        for name in api.preset_names(method):
            text = METHOD_PRESET_HELP.get((method, name), PRESET_HELP.get(name, name))
            self.preset_combo.addItem(text, name)
        self.preset_combo.setCurrentIndex(max(0, self.preset_combo.findData(api.default_preset())))
        self.teacher_combo.setEnabled(method == "mdss" and not self.running)
        self._show_loss_curves(METHOD_STAGES.get(method, tuple(LOSS_STAGES)))
        self.refresh_resume()

    def _show_loss_curves(self, stages: tuple[str, ...]) -> None:
        """Only the curves (and legend entries) of the stages the chosen detector trains."""
        legend = self.loss_plot.getPlotItem().legend
        legend.clear()
        for stage, curve in self.loss_curves.items():
            curve.setVisible(stage in stages)
            if stage in stages:
                legend.addItem(curve, LOSS_STAGES[stage][0])

    def options(self) -> dict[str, Any]:
        teacher = self.teacher_combo.currentData()
        return {
            "folder": self.folder_edit.text().strip(),
            "category": self.category_combo.currentData() or None,
            "method": self.method_combo.currentData() or "mdss",
            "preset": self.preset_combo.currentData(),
            "device": self.device_combo.currentData() or "auto",
            "teacher": teacher if teacher and teacher != "__choose__" else None,
            "output": self.output_edit.text().strip(),
            "extra_good": self.extra_good_folders(),
            "resume": self.resume_check.isVisibleTo(self) and self.resume_check.isChecked(),
        }

    def extra_good_folders(self) -> list[str]:
        """The folder of samples marked as good, when the user includes them."""
        folder, count = self._marked_good
        return [folder] if folder and count and self.marked_good_check.isChecked() else []

    def set_marked_good(self, folder: str, count: int) -> None:
        """Offer to include the ``count`` samples marked as good (copies under ``folder``)."""
        if count and not self._marked_good[1]:
            self.marked_good_check.setChecked(True)  # marked to be trained on: on by default
        self._marked_good = (folder, count)
        noun = "sample" if count == 1 else "samples"
        self.marked_good_check.setText(f"Include {count} {noun} marked as good")
        self.marked_good_check.setToolTip(f"Extra normal training samples from {folder}")
        self.marked_good_check.setVisible(count > 0)
        if count == 0:
            self.marked_good_check.setChecked(False)

    def refresh_resume(self) -> None:
        """Offer to resume when the chosen output has a checkpoint of the chosen detector's
        training (ticked by default)."""
        output = self.output_edit.text().strip()
        info = api.checkpoint_info(output) if output else None
        if info is not None and info.method != (self.method_combo.currentData() or "mdss"):
            info = None  # another detector's training: a new one replaces it
        if info is not None:
            self.resume_check.setText(resume_text(info))
            if not self.resume_check.isVisibleTo(self):
                self.resume_check.setChecked(True)
        self.resume_check.setVisible(info is not None)

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            self._folder_changed()

    def _browse_output(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save model as", self.output_edit.text(), MODEL_FILTER
        )
        if path:
            if not Path(path).suffix:
                path += api.MODEL_SUFFIX
            self.output_edit.setText(path)

    def _teacher_activated(self, _index: int) -> None:
        if self.teacher_combo.currentData() != "__choose__":
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Import teacher", "", "Teacher weights (*.pth *.pt *.safetensors);;All files (*)"
        )
        if not path:
            self.teacher_combo.setCurrentIndex(0)
            return
        self.set_teacher(path)

    def set_teacher(self, path: str) -> None:
        index = self.teacher_combo.findData(path)
        if index < 0:
            index = self.teacher_combo.count() - 1
            self.teacher_combo.insertItem(index, f"Imported: {Path(path).name}", path)
        self.teacher_combo.setCurrentIndex(index)

    def _folder_changed(self) -> None:
        folder = self.folder_edit.text().strip()
        names = category_choices(folder) if folder else []
        self.category_combo.clear()
        for name in names:
            self.category_combo.addItem(name, name)
        self.category_combo.setEnabled(bool(names))
        if not names:
            self.category_combo.addItem(Path(folder).name if folder else "—", "")
        if folder and not self.output_edit.text().strip():
            name = (names[0] if names else Path(folder).name) or "model"
            models = workspace() / "models"
            self.output_edit.setText(str(free_path(models, name, api.MODEL_SUFFIX)))
        self._summarize_folder(folder)

    def _summarize_folder(self, folder: str) -> None:
        if not folder:
            self.data_summary.setText("")
            return
        try:
            index = api.open_folder(folder)
        except DataError as exc:
            self.data_summary.setText(str(exc))
            self.data_summary.setStyleSheet(f"color: {style.ANOMALY};")
            return
        counts = {s: len(index.select(split=s)) for s in ("train", "validation", "test")}
        text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or f"{len(index)} samples"
        self.data_summary.setText(text)
        self.data_summary.setStyleSheet("")

    # ----- training ---------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.task is not None and self.task.running

    def start_training(self) -> Task | None:
        if self.running:
            return self.task
        opts = self.options()
        problem = self._check(opts)
        if problem:
            QMessageBox.warning(self, "Cannot train", problem)
            return None
        job = train_job(
            opts["folder"], opts["category"], opts["preset"], opts["device"], opts["teacher"],
            opts["output"], opts["extra_good"], opts["resume"], opts["method"],
        )  # fmt: skip
        self.task = Task("training", job, self)
        self.task.progress.connect(self._on_progress)
        self.task.done.connect(self._on_done)
        self.task.failed.connect(self._on_failed)
        self.task.cancelled.connect(self._on_cancelled)
        self.task.finished.connect(self.refresh_resume)
        self._reset_progress()
        self._set_running(True)
        self.stage_label.setText("Starting…")
        self.task_started.emit(self.task)
        self._start_task(self.task)
        return self.task

    def _check(self, opts: dict[str, Any]) -> str:
        if not opts["folder"]:
            return "Choose the dataset folder to train on."
        if not Path(opts["folder"]).is_dir():
            return f"{opts['folder']}: folder not found"
        if not opts["output"]:
            return "Choose where to save the model."
        out_dir = Path(opts["output"]).parent
        if not out_dir.is_dir():
            return f"{out_dir}: output folder not found"
        return ""

    def cancel_training(self) -> None:
        if self.running:
            self.task.cancel()
            self.cancel_button.setEnabled(False)
            self.stage_label.setText("Cancelling… (stops after the current step)")

    def _reset_progress(self) -> None:
        self._eta = EtaTracker()
        self._loss = {}
        self._plot_timer.stop()
        for curve in self.loss_curves.values():
            curve.setData([], [])
        self.progress_bar.setValue(0)
        self.eta_label.setText("")

    def _set_running(self, running: bool) -> None:
        self.train_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for widget in (
            self.folder_edit, self.category_combo, self.method_combo, self.preset_combo,
            self.device_combo, self.teacher_combo, self.output_edit, self.resume_check,
        ):  # fmt: skip
            widget.setEnabled(not running)
        self.teacher_combo.setEnabled(not running and self.method_combo.currentData() == "mdss")

    def _on_progress(self, p: Progress) -> None:
        remaining = self._eta.update(p)
        text = STAGE_TEXT.get(p.stage, p.stage)
        if p.total > 0:
            text += f" — {p.step}/{p.total}"
        self.stage_label.setText(text)
        self.progress_bar.setValue(int(p.fraction * 1000))
        eta = (
            f"about {format_duration(remaining)} left in this stage"
            if math.isfinite(remaining)
            else ""
        )
        if "loss" in p.metrics:
            eta = f"loss {p.metrics['loss']:.4g}" + (f" · {eta}" if eta else "")
        self.eta_label.setText(eta)
        loss = p.metrics.get("loss")
        if p.stage in self.loss_curves and loss is not None and loss > 0 and math.isfinite(loss):
            xs, ys = self._loss.setdefault(p.stage, ([], []))
            xs.append(p.step)
            ys.append(loss)
            if not self._plot_timer.isActive():
                self._plot_timer.start()

    def redraw_loss(self) -> None:
        """Draw the loss points received so far (on a timer, and once when training ends)."""
        self._plot_timer.stop()
        for stage, (xs, ys) in self._loss.items():
            self.loss_curves[stage].setData(xs, ys, skipFiniteCheck=True)

    def _on_done(self, result: tuple[Any, Path, str]) -> None:
        self.redraw_loss()
        model, path, label = result
        self._set_running(False)
        self.progress_bar.setValue(1000)
        self.stage_label.setText(f"Done — saved {path}")
        self.eta_label.setText("")
        self.trained.emit(model, str(path), label)

    def _on_failed(self, message: str) -> None:
        self.redraw_loss()
        self._set_running(False)
        self.stage_label.setText("Training failed.")
        self.eta_label.setText(message)
        QMessageBox.critical(self, "Training failed", message)

    def _on_cancelled(self, _message: str) -> None:
        self.redraw_loss()
        self._set_running(False)
        text = "Training cancelled — the current model is unchanged."
        if api.checkpoint_info(self.output_edit.text().strip()) is not None:
            text = "Training cancelled — the current model is unchanged; a checkpoint was kept."
        self.stage_label.setText(text)
        self.eta_label.setText("")

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.running:
            answer = QMessageBox.question(
                self, "Training in progress", "Cancel the training and close?"
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.cancel_training()
        super().closeEvent(event)

    def loss_points(self, stage: str) -> int:
        return len(self._loss.get(stage, ([], []))[0])

    def plotted_points(self, stage: str) -> int:
        """Points of ``stage`` that the loss plot draws now (tests read the plot through it)."""
        xs, _ = self.loss_curves[stage].getData()
        return 0 if xs is None else len(xs)


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
    return box
