"""Status bar pieces: device / model / timing / pixel labels and a progress area for tasks."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QStatusBar, QWidget

from mdss_app.workers import Task
from mdss_core.api import Progress

STAGE_NAMES = {
    "predict": "Scoring",
    "synth": "Generating demo data",
    "prepare": "Preparing",
    "prepare-val": "Preparing validation",
    "rgb": "Training RGB",
    "rgb-memory": "Normal-cell memory",
    "geometry": "Training 3D",
    "teacher-features": "Teacher features",
    "crd": "Training CRD",
    "dmgrd": "Training DM-GRD",
    "calibrate": "Calibrating",
    "metrics": "Metrics",
    "export": "Exporting",
    "save": "Saving",
}


class TaskStatus(QWidget):
    """Shows the most recent tracked task (progress + Cancel); hidden when none runs."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("")
        self.bar = QProgressBar()
        self.bar.setFixedWidth(180)
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("smallButton")
        self.cancel_button.clicked.connect(self._cancel)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 6, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel_button)
        self._stack: list[Task] = []
        self.setVisible(False)

    def track(self, task: Task, title: str) -> None:
        task.status_title = title  # type: ignore[attr-defined]
        self._stack.append(task)
        task.progress.connect(lambda p, t=task: self._on_progress(t, p))
        task.finished.connect(lambda t=task: self._on_finished(t))
        self._show(task)

    @property
    def current(self) -> Task | None:
        return self._stack[-1] if self._stack else None

    def _show(self, task: Task) -> None:
        self.label.setText(f"{task.status_title}…")  # type: ignore[attr-defined]
        self.bar.setRange(0, 0)  # busy until the first report
        self.cancel_button.setEnabled(True)
        self.setVisible(True)

    def _on_progress(self, task: Task, p: Progress) -> None:
        if task is not self.current:
            return
        stage = STAGE_NAMES.get(p.stage, p.stage)
        title = task.status_title  # type: ignore[attr-defined]
        same = stage.lower().startswith(title.lower()) or title.lower().startswith(stage.lower())
        prefix = stage if same else f"{title} · {stage}"
        self.label.setText(f"{prefix} {p.step}/{p.total}" if p.total > 0 else prefix)
        if p.total > 0:
            self.bar.setRange(0, 1000)
            self.bar.setValue(int(p.fraction * 1000))

    def _on_finished(self, task: Task) -> None:
        if task in self._stack:
            self._stack.remove(task)
        if self._stack:
            self._show(self._stack[-1])
        else:  # no stale "Opening folder…" may remain, even hidden
            self.label.setText("")
            self.setVisible(False)

    def _cancel(self) -> None:
        if self.current is not None:
            self.current.cancel()
            self.cancel_button.setEnabled(False)
            self.label.setText(f"{self.current.status_title}: cancelling…")  # type: ignore[attr-defined]


class StatusFields:
    """The status bar's fields: the hovered pixel, then task progress, device, model, timing."""

    def __init__(self, bar: QStatusBar) -> None:
        self.task_status = TaskStatus()
        self.pixel_label = QLabel("")
        self.pixel_label.setObjectName("muted")
        self.device_label = QLabel("Device: —")
        self.model_label = QLabel("Model: none")
        self.time_label = QLabel("Inference: —")
        bar.addWidget(self.pixel_label, 1)
        bar.addPermanentWidget(self.task_status)
        for label in (self.device_label, self.model_label, self.time_label):
            label.setObjectName("statusField")
            bar.addPermanentWidget(label)

    def show_model(self, label: str, details: str, path: str, device_text: str) -> None:
        self.device_label.setText(f"Device: {device_text}")
        self.model_label.setText(f"Model: {label}")
        self.model_label.setToolTip(f"{path}\n{details}")

    def show_probed_device(self, devices: list[tuple[str, str]]) -> None:
        """Before a model says where it runs: what "auto" resolves to here."""
        label = devices[0][1] if devices else ""
        if label.startswith("Auto (") and label.endswith(")"):
            self.device_label.setText(f"Device: {label[len('Auto (') : -1]}")

    def show_time(self, timings_ms: dict[str, float]) -> None:
        total = timings_ms.get("total")
        if total is not None:
            self.time_label.setText(f"Inference: {total:.0f} ms")
