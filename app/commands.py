"""What the inspector runs in the background: open, load, train, score, measure, export.

Each command starts a :class:`Task` that calls the engine façade on a worker thread and hands its
result to the session on the UI thread; a failure becomes one line in the window.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from mdss_app.dialogs.train_dialog import FALLBACK_DEVICES, TrainDialog, train_job
from mdss_app.panels.curves_panel import CurvesPanel
from mdss_app.session import InspectorSession
from mdss_app.settings import AppSettings, free_path, workspace
from mdss_app.status import TaskStatus
from mdss_app.workers import Task, TaskContext, TaskRegistry
from mdss_core import api


class Messages(Protocol):
    def show_error(self, title: str, message: str) -> None: ...

    def notify(self, message: str, ms: int = 8000) -> None: ...


def score_job(model: api.Model, refs: list[api.SampleRef]) -> Callable[[TaskContext], list[str]]:
    """Emit ``(ref, prediction)`` per scored sample; return the skipped samples' messages."""

    def run(ctx: TaskContext) -> list[str]:
        problems = []
        for item in api.score_folder(model, refs, ctx.progress, ctx.cancel):
            if item.error is not None:
                problems.append(str(item.error))
            else:
                ctx.emit((item.ref, item.prediction))
        return problems

    return run


class Commands(QObject):
    dataset_loaded = Signal(object)  # DatasetIndex
    inference_finished = Signal(str)  # outcome: "done" | "cancelled" | "failed"
    devices_found = Signal(list)  # [(value, label), …]
    mismatch_found = Signal(str)  # the model was trained on another category: why, one line

    def __init__(
        self,
        session: InspectorSession,
        settings: AppSettings,
        status: TaskStatus,
        curves: CurvesPanel,
        window: QWidget,
    ) -> None:
        super().__init__(window)
        self.session, self.settings = session, settings
        self.status, self.curves = status, curves
        self.window = window
        self.messages: Messages = window  # type: ignore[assignment]
        self.tasks = TaskRegistry(self)
        self.devices: list[tuple[str, str]] = list(FALLBACK_DEVICES)
        self.inference_task: Task | None = None
        self.metrics_task: Task | None = None
        self.train_dialog: TrainDialog | None = None
        self.model_pending = False

    def run(self, task: Task, status_title: str | None = None) -> Task:
        if status_title:
            self.status.track(task, status_title)
        return self.tasks.start(task)

    def _task(self, title: str, job: Callable[[TaskContext], object], error_title: str) -> Task:
        task = Task(title, job, self)
        task.failed.connect(lambda message: self.messages.show_error(error_title, message))
        return task

    def probe_devices(self) -> None:
        task = Task("devices", lambda _ctx: api.available_devices(), self)
        task.done.connect(self._on_devices)
        self.run(task)

    def _on_devices(self, devices: list[tuple[str, str]]) -> None:
        self.devices = list(devices) or self.devices
        if self.train_dialog is not None:
            self.train_dialog.set_devices(self.devices)
        self.devices_found.emit(self.devices)

    # ----- data and models -----------------------------------------------------------------
    def open_folder(self, path: str | Path, demo: bool = False) -> Task:
        task = self._task(
            "open folder", lambda _c, p=str(path): api.open_folder(p), "Cannot open folder"
        )
        task.done.connect(lambda dataset, d=demo: self.use_dataset(dataset, d))
        return self.run(task, "Opening folder")

    def use_dataset(self, dataset: api.DatasetIndex, demo: bool = False) -> None:
        self.cancel_scoring()
        self.curves.clear()
        self.session.set_dataset(dataset, demo)
        if not demo:
            self.settings.last_folder = str(dataset.root)
        self.dataset_loaded.emit(dataset)
        if self.session.model is not None:
            self.score_if_matching()

    def open_model(self, path: str | Path) -> Task:
        def job(_ctx: TaskContext, p: str = str(path)) -> tuple[api.Model, str, str]:
            model = api.load_model(p)
            return model, p, api.device_label(model.device)

        task = self._task("load model", job, "Cannot open model")
        self.model_pending = True
        task.finished.connect(lambda: setattr(self, "model_pending", False))
        task.done.connect(lambda result: self.use_model(*result))
        return self.run(task, "Loading model")

    def use_model(self, model: api.Model, path: str = "", device_text: str = "") -> None:
        """Use ``model`` from now on: thresholds reset to its own, the folder is re-scored."""
        self.cancel_scoring()
        if path and not self.session.dataset_is_demo:
            self.settings.last_model = str(path)
        self.session.set_model(model, path, device_text or str(model.device))
        self.messages.notify(f"Model '{model.name}' loaded ({self.session.device_text})")
        if self.session.dataset is not None:
            self.score_if_matching()

    def import_teacher(self, path: str | Path) -> Task:
        task = self._task(
            "import teacher",
            lambda _c, p=str(path): (p, api.check_teacher_file(p)),
            "Cannot use teacher",
        )
        task.done.connect(lambda result: self._on_teacher(*result))
        return self.run(task, "Checking teacher")

    def _on_teacher(self, path: str, origin: dict) -> None:
        self.settings.teacher_path = path
        if self.train_dialog is not None:
            self.train_dialog.set_teacher(path)
        kind = f" ({origin.get('format', '')} {origin.get('size', '')})".rstrip(" ()")
        self.messages.notify(f"Teacher {Path(path).name}{kind} will be used for the next training")

    def show_train_dialog(self) -> TrainDialog:
        if self.train_dialog is None:
            dataset, folder, output = self.session.dataset, "", ""
            if dataset is not None:
                folder = str(dataset.root)
                name = dataset.category or dataset.root.name
                output = str(free_path(workspace() / "models", name, api.MODEL_SUFFIX))
            self.train_dialog = TrainDialog(
                folder,
                output,
                self.settings.teacher_path,
                self.devices,
                self.tasks.start,
                self.window,
            )
            self.train_dialog.trained.connect(self.use_model)
            self.train_dialog.task_started.connect(lambda t: self.status.track(t, "Training"))
        self.train_dialog.show()
        self.train_dialog.raise_()
        return self.train_dialog

    # ----- demo ------------------------------------------------------------------------------
    def start_demo(self) -> Task:
        """Generate (once) and open the demo category; use the shipped or cached demo model,
        else train one in the background (preset ``fast``) while the samples are browsable."""
        task = self._task("demo data", lambda _ctx: api.demo_dataset(), "Demo unavailable")
        task.done.connect(self._on_demo_data)
        return self.run(task, "Preparing demo")

    def _on_demo_data(self, path: Path) -> None:
        opened = self.open_folder(path, demo=True)
        if self.session.model is not None or self.model_pending:
            return
        model_path = api.demo_model_path()
        if model_path is not None:
            opened.done.connect(lambda _r, p=str(model_path): self.open_model(p))
        else:
            opened.done.connect(lambda _r, p=path: self.train_demo_model(p))

    def train_demo_model(self, folder: str | Path, preset: str = "fast") -> Task:
        target = api.demo_model_target()
        target.parent.mkdir(parents=True, exist_ok=True)
        job = train_job(str(folder), None, preset, "auto", None, str(target))
        task = self._task("demo training", job, "Demo training failed")
        task.done.connect(lambda result: self.use_model(*result))
        task.cancelled.connect(lambda _m: self.messages.notify("Demo training cancelled"))
        self.messages.notify(
            "No demo model yet: training one in the background (preset 'fast')", 20000
        )
        return self.run(task, "Training demo model")

    # ----- scoring and metrics ---------------------------------------------------------------
    @property
    def inference_running(self) -> bool:
        return self.inference_task is not None and self.inference_task.running

    @property
    def metrics_running(self) -> bool:
        return self.metrics_task is not None and self.metrics_task.running

    def cancel_scoring(self) -> None:
        if self.inference_running:
            self.inference_task.cancel()
        self.inference_task = None

    def score_if_matching(self) -> Task | None:
        """Score the folder, unless the model was trained on another category: then say so
        (``mismatch_found``) and leave the choice to the user, never score silently."""
        session = self.session
        if session.model is not None and session.dataset is not None:
            problem = api.category_mismatch(session.model, session.dataset)
            if problem and not session.dataset_is_demo:
                self.cancel_scoring()
                session.clear_scores()
                self.curves.clear("Not scored: the model is for another category")
                self.mismatch_found.emit(problem)
                return None
        return self.start_scoring()

    def start_scoring(self) -> Task | None:
        session = self.session
        if session.model is None or session.dataset is None:
            self.messages.show_error("Cannot score", "open a folder and a model first")
            return None
        self.cancel_scoring()
        session.clear_scores()
        self.curves.clear("Scoring…")
        refs = api.refs_to_score(session.dataset)
        current = session.view.ref
        if current is not None and current in refs:
            refs.remove(current)  # what the user looks at comes first
            refs.insert(0, current)
        task = self._task("inference", score_job(session.model, refs), "Inference failed")
        task.item.connect(lambda item: session.add_scored(*item))
        task.done.connect(lambda problems: setattr(session, "problems", list(problems)))
        task.finished.connect(lambda t=task: self._on_scoring_finished(t))
        self.inference_task = task
        return self.run(task, f"Scoring {len(refs)} samples")

    def _on_scoring_finished(self, task: Task) -> None:
        if task is self.inference_task:
            self.inference_task = None
        scored, problems = len(self.session.predictions), self.session.problems
        if task.outcome == "done":
            message = f"Scored {scored} samples"
            if problems:
                message += f" · {len(problems)} skipped: {problems[0]}"
            self.messages.notify(message, 20000)
        elif task.outcome == "cancelled":
            self.messages.notify(f"Scoring cancelled after {scored} samples")
        self.inference_finished.emit(task.outcome)
        if scored and task.outcome in ("done", "cancelled"):
            self.compute_metrics()
        else:
            self.curves.clear(self._unscored_message(task))

    def _unscored_message(self, task: Task) -> str:
        """What the metrics panel says instead of "Scoring…" when scoring produced nothing."""
        if task.outcome == "failed":
            return f"Scoring failed: {task.error}"
        if task.outcome == "cancelled":
            return "Scoring cancelled before any sample was scored."
        if self.session.problems:
            return f"No sample could be scored: {self.session.problems[0]}"
        return "No sample to score."

    def compute_metrics(self) -> Task | None:
        items = self.session.scored_items()
        if not items:
            self.curves.clear()
            return None
        if self.metrics_running:
            self.metrics_task.cancel()
        self.curves.set_busy("Computing metrics…")
        task = Task("metrics", lambda c, it=items: api.evaluate(it, c.progress, c.cancel), self)
        task.done.connect(self._on_metrics)
        task.failed.connect(lambda message: self.curves.set_message(f"Metrics: {message}"))
        self.metrics_task = task
        return self.run(task)

    def _on_metrics(self, report: api.EvaluationReport | None) -> None:
        self.curves.show_report(report, 0 if report is None else len(report.samples))

    def export_results(self, folder: str | Path) -> Task | None:
        items = self.session.scored_items()
        if not items:
            self.messages.show_error("Nothing to export", "score the samples first (open a model)")
            return None
        session = self.session
        pixel, image = session.thresholds.pixel, session.thresholds.image
        about = {  # what the report says: which model scored which folder, what was skipped
            "model": session.model,
            "data_folder": session.dataset.root if session.dataset is not None else "",
            "errors": list(session.problems),
            # the metrics panel's table, when done: the export then skips recomputing AUPRO
            "evaluation": None if self.metrics_running else getattr(self.curves, "report", None),
        }

        def job(ctx: TaskContext) -> Path:
            return api.export_results(
                items, folder, pixel, image, ctx.progress, ctx.cancel, **about
            )

        task = self._task("export", job, "Export failed")
        task.done.connect(
            lambda path: self.messages.notify(
                f"Exported {len(items)} samples → {path.parent} (report.html, scores.csv)", 15000
            )
        )
        return self.run(task, "Exporting")
