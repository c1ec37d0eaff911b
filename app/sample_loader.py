"""Loads a sample's pixels off the UI thread; only the latest request is delivered.

Moving quickly through the list (keys held down) starts a load per step; results of requests
that were overtaken are dropped, and a small cache makes going back instant.
"""

from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QObject, Signal

from mdss_app.workers import Task, TaskRegistry
from mdss_core.api import Sample, SampleRef

CACHE_SIZE = 8


class SampleLoader(QObject):
    loaded = Signal(object)  # Sample (the latest request only)
    failed = Signal(object, str)  # SampleRef, one-line message

    def __init__(self, registry: TaskRegistry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._registry = registry
        # Keyed by the whole ref (its paths), not ``ref.key``: folders share keys.
        self._cache: OrderedDict[SampleRef, Sample] = OrderedDict()
        self._latest = 0

    def request(self, ref: SampleRef) -> None:
        self._latest += 1
        generation = self._latest
        cached = self._cache.get(ref)
        if cached is not None:
            self._cache.move_to_end(ref)
            self.loaded.emit(cached)
            return
        task = Task(f"load {ref.key}", lambda _ctx, r=ref: r.load(), self)
        task.done.connect(lambda sample, g=generation: self._on_done(g, sample))
        task.failed.connect(lambda message, g=generation, r=ref: self._on_failed(g, r, message))
        self._registry.start(task)

    def clear(self) -> None:
        self._cache.clear()
        self._latest += 1  # results still in flight belong to the previous folder

    def _remember(self, sample: Sample) -> None:
        self._cache[sample.ref] = sample
        self._cache.move_to_end(sample.ref)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _on_done(self, generation: int, sample: Sample) -> None:
        if generation != self._latest:
            self._remember(sample)  # still useful if the user comes back
            return
        self._remember(sample)
        self.loaded.emit(sample)

    def _on_failed(self, generation: int, ref: SampleRef, message: str) -> None:
        if generation == self._latest:
            self.failed.emit(ref, message)
