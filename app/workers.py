"""Background work on QThreads: engine callbacks become Qt signals delivered on the UI thread.

A :class:`Task` lives on the UI thread and owns a private worker object that runs the job on its
own QThread. The worker's signals reach the Task through queued connections, and the Task
re-emits them, so every slot connected to a Task (lambdas included) runs on the UI thread.
Cancellation is a ``threading.Event`` passed to the engine as its ``cancel`` token.

Rule for what crosses threads: a worker never shares a Python object with a widget that paints.
Progress crosses as a fresh frozen snapshot (str, int, float and a read-only metrics map built
for the UI alone, :func:`progress_snapshot`), at most ``PROGRESS_HZ`` times a second; a job's
results are objects the job no longer touches once emitted (it copies arrays it keeps using).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal, Slot

from mdss_core.api import Cancelled, Progress, describe, first_line

log = logging.getLogger(__name__)

# Training reports every step (hundreds a second on a GPU); each update repaints labels and
# a plot on the UI thread, which competes with the worker for the GIL. Ten a second is smooth.
PROGRESS_HZ = 10
MIN_PROGRESS_INTERVAL_S = 1.0 / PROGRESS_HZ


@dataclass
class TaskContext:
    """What a job function receives: report progress, check/see cancel, emit partial results."""

    progress: Callable[[Progress], None]
    cancel: threading.Event
    emit: Callable[[Any], None]


JobFunction = Callable[[TaskContext], Any]


def failure_message(exc: Exception) -> str:
    """One line for a failed job: I/O, damaged files and memory as the CLI words them
    (``describe``); anything else is a bug, logged with its traceback."""
    message = describe(exc)
    if message is None:
        log.error("background task failed:\n%s", traceback.format_exc())
        message = f"unexpected error: {type(exc).__name__}: {first_line(exc)}"
    return message


def progress_snapshot(p: Progress) -> Progress:
    """A copy of a report made of plain values that only the receiving (UI) thread holds."""
    metrics = MappingProxyType({str(k): float(v) for k, v in p.metrics.items()})
    return Progress(str(p.stage), int(p.step), int(p.total), str(p.message), metrics)  # type: ignore[arg-type]


class _Worker(QObject):
    progress = Signal(object)
    item = Signal(object)
    ended = Signal(str, object)  # outcome ("done" | "failed" | "cancelled"), payload

    def __init__(self, fn: JobFunction, cancel: threading.Event) -> None:
        super().__init__()
        self._fn = fn
        self._cancel = cancel
        self._last_emit = 0.0
        self._last_stage = ""

    def _progress(self, p: Progress) -> None:
        now = time.monotonic()
        final = p.total > 0 and p.step >= p.total
        if final or p.stage != self._last_stage or now - self._last_emit >= MIN_PROGRESS_INTERVAL_S:
            self._last_emit, self._last_stage = now, p.stage
            self.progress.emit(progress_snapshot(p))

    @Slot()
    def run(self) -> None:
        context = TaskContext(self._progress, self._cancel, self.item.emit)
        try:
            result = self._fn(context)
        except Cancelled as exc:
            self.ended.emit("cancelled", str(exc))
        except Exception as exc:  # the GUI's error boundary: nothing may take the window down
            self.ended.emit("failed", failure_message(exc))
        else:
            if self._cancel.is_set():
                self.ended.emit("cancelled", "cancelled")
            else:
                self.ended.emit("done", result)
        finally:
            self._fn = None  # drop the job's closure (it may hold many predictions)
            # Quit our own event loop so shutdown can join the thread without the UI loop.
            thread = QThread.currentThread()
            app = QCoreApplication.instance()
            if app is not None and thread is not app.thread():
                thread.quit()


class Task(QObject):
    """One background job. Connect to its signals, then :meth:`start` it.

    ``finished`` is always the last signal, after exactly one of ``done``/``failed``/``cancelled``.
    """

    progress = Signal(object)  # Progress
    item = Signal(object)  # partial result, e.g. (SampleRef, Prediction)
    done = Signal(object)  # the job's return value
    failed = Signal(str)  # one-line message
    cancelled = Signal(str)
    finished = Signal()

    def __init__(self, title: str, fn: JobFunction, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.outcome = ""
        self.result: Any = None
        self.error = ""
        self._cancel = threading.Event()
        self._thread: QThread | None = None
        self._worker = _Worker(fn, self._cancel)
        self._worker.progress.connect(self._on_progress)
        self._worker.item.connect(self._on_item)
        self._worker.ended.connect(self._on_ended)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self.outcome

    def start(self) -> Task:
        thread = QThread()
        thread.setObjectName(f"mdss-task: {self.title}")
        self._worker.moveToThread(thread)
        thread.started.connect(self._worker.run)
        self._thread = thread
        thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, ms: int = 30000) -> bool:
        """Block until the thread ends (shutdown only; the UI must not wait in normal use)."""
        if self._thread is None or self.outcome:
            return True
        return bool(self._thread.wait(ms))

    @Slot(object)
    def _on_progress(self, p: Progress) -> None:
        self.progress.emit(p)

    @Slot(object)
    def _on_item(self, value: object) -> None:
        if not self._cancel.is_set():
            self.item.emit(value)

    @Slot(str, object)
    def _on_ended(self, outcome: str, payload: object) -> None:
        self.outcome = outcome
        if self._thread is not None:
            self._thread.quit()
            self._thread.wait()
            self._worker.deleteLater()
            self._thread.deleteLater()
        if outcome == "done":
            self.result = payload
            self.done.emit(payload)
        elif outcome == "cancelled":
            self.error = str(payload)
            self.cancelled.emit(str(payload))
        else:
            self.error = str(payload)
            self.failed.emit(str(payload))
        self.finished.emit()


class TaskRegistry(QObject):
    """Keeps running tasks alive (Python references) and cancels them all on shutdown."""

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: list[Task] = []

    def start(self, task: Task) -> Task:
        self._tasks.append(task)
        task.finished.connect(lambda t=task: self._forget(t))
        task.start()
        self.changed.emit()
        return task

    def _forget(self, task: Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
            # Free the Qt side once control returns to the event loop; Python attributes
            # (outcome, result) stay readable on any wrapper still referenced.
            task.deleteLater()
            self.changed.emit()

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def shutdown(self, ms: int = 20000) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            task.wait(ms)


class BackgroundRunner(QObject):
    """Short jobs on one background thread, each result handed to its callback on the UI thread.

    ``run(job, done)`` is the session's runner: connected-component passes for a new threshold
    must not block the UI, but start too often for a thread each. A job that raises is reported
    through ``failed`` with a one-line message.
    """

    failed = Signal(str)
    _finished = Signal(object, object)  # the job's Future, its callback

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdss-background")
        self._finished.connect(self._deliver)  # queued: emitted on the pool's thread

    def run(self, job: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._pool.submit(job).add_done_callback(lambda future: self._finished.emit(future, done))

    @Slot(object, object)
    def _deliver(self, future: Future, done: Callable[[Any], None]) -> None:
        try:
            result = future.result()
        except Exception as exc:  # the UI thread must go on: say what failed, once
            self.failed.emit(failure_message(exc))
            return
        done(result)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
