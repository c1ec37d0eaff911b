"""Prediction over many samples: worker processes prepare ahead, the networks score batches.

Why: on a GPU the networks need about a millisecond per sample, while reading its files,
removing the background plane and cutting patches take ~25 ms of one CPU core (256², measured
on CPU). Scored one at a time, the GPU would mostly wait. Here ``workers`` processes run that
CPU half (:func:`mdss_core.preprocess.ready.load_ready`, torch-free) ahead of the model, and the
model runs each branch once per batch of ``batch_size`` samples. Predictions equal
:meth:`MDSSModel.predict`'s, sample by sample, up to float rounding.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, Protocol

from mdss_core.errors import DataError
from mdss_core.io.sample import SampleRef
from mdss_core.prediction import Prediction, Scored
from mdss_core.preprocess.ready import Preparation, ReadySample, load_ready
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

# Samples prepared ahead of the batch being scored, in batches: enough to keep workers busy
# while the model runs, bounded so that a long list of samples does not fill the memory.
_BATCHES_AHEAD = 2


class ReadyPredictor(Protocol):
    """What scoring many samples needs of a model (:class:`mdss_core.model.MDSSModel`)."""

    @property
    def preparation(self) -> Preparation: ...

    def predict_ready(self, batch: Sequence[ReadySample]) -> list[Prediction]: ...


def score_batched(
    model: ReadyPredictor,
    refs: Iterable[SampleRef],
    batch_size: int = 8,
    workers: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[Scored]:
    """Yield one :class:`Scored` per ref, in the order of ``refs``.

    A sample that cannot be read or preprocessed (``DataError``) is yielded with its error in
    its turn, and the run goes on; any other failure stops it, after the samples before it.
    ``workers = 0`` prepares in this thread. Cancelling stops between samples and drops the
    work queued in the workers. Workers are spawned processes, which import the calling script
    again: a script that calls this with ``workers > 0`` needs the usual
    ``if __name__ == "__main__":`` guard.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must not be negative, got {workers}")
    refs = list(refs)
    preparation = model.preparation
    ahead = batch_size * (_BATCHES_AHEAD if workers else 1)
    done = 0
    with _executor(workers) as submit:
        pending: deque[Future] = deque()
        while done < len(refs):
            while len(pending) < ahead and done + len(pending) < len(refs):
                check_cancel(cancel, "prediction")
                pending.append(submit(load_ready, refs[done + len(pending)], preparation))
            batch, failure = [], None
            while pending and len(batch) < batch_size:
                check_cancel(cancel, "prediction")
                try:
                    batch.append(pending.popleft().result())
                except Exception as exc:  # the samples before it are still scored and yielded
                    failure = exc
                    break
            check_cancel(cancel, "prediction")
            outcomes = [Scored(refs[done + i], p) for i, p in enumerate(model.predict_ready(batch))]
            if isinstance(failure, DataError):
                outcomes.append(Scored(refs[done + len(batch)], error=failure))
            for scored in outcomes:
                done += 1
                yield scored
                report(progress, "predict", done, len(refs), scored.ref.key)
            if failure is not None and not isinstance(failure, DataError):
                raise failure


def predict_batched(
    model: ReadyPredictor,
    refs: Iterable[SampleRef],
    batch_size: int = 8,
    workers: int = 0,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> Iterator[tuple[SampleRef, Prediction]]:
    """:func:`score_batched` that stops at the first sample that cannot be read: its
    ``DataError`` is raised in its turn, after the samples before it were yielded."""
    for scored in score_batched(model, refs, batch_size, workers, progress, cancel):
        if scored.error is not None:
            raise scored.error
        yield scored.ref, scored.prediction


Submit = Callable[..., Future]


@contextmanager
def _executor(workers: int) -> Iterator[Submit]:
    """``submit(fn, *args) -> Future``: in a process pool, or run at once in this thread."""
    if workers == 0:
        yield _run_now
        return
    # spawn: the workers start clean (no copy of this process's torch threads or CUDA state)
    # and import only what load_ready needs.
    pool: Executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool.submit
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_now(fn: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except Exception as exc:  # delivered by result(), in order, as from a worker
        future.set_exception(exc)
    return future


__all__ = ["ReadyPredictor", "predict_batched", "score_batched"]
