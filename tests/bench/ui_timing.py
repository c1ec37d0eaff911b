"""The UI-thread clock the GUI benchmarks share (``slider.py``, ``train_throughput.py``)."""

from __future__ import annotations

import time

from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication


class TimedApplication(QApplication):
    """Times every event the UI thread handles (outermost dispatch only) while ``recording``:
    ``blocks`` holds the milliseconds of each dispatch."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.recording = False
        self.blocks: list[float] = []
        self._depth = 0

    def notify(self, receiver, event) -> bool:  # noqa: N802 (Qt override)
        if not self.recording or QThread.currentThread() is not self.thread():
            return super().notify(receiver, event)
        self._depth += 1
        start = time.perf_counter()
        try:
            return super().notify(receiver, event)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self.blocks.append(1e3 * (time.perf_counter() - start))
