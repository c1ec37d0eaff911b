"""Scoring spread over Ray actors: each loads the model once and scores chunks of samples.

Actors return predictions and the driver writes every file: one writer means no two processes
ever write the same output folder, the run journal and the CSVs stay in step, and the output
folder need only exist on the driver's machine (actors may run on nodes that cannot see it).
The samples themselves are read by the actors, from paths every node must be able to read.

A chunk is the unit of retry: when an actor dies (a node lost, out of memory, killed), the
chunks it had not returned go back to the queue and a new actor takes its place; the driver
keeps each sample's first result only, so nothing is written twice.
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mdss_core.cluster.ray_env import cpu_count, gpu_count
from mdss_core.errors import MDSSError
from mdss_core.io.sample import SampleRef
from mdss_core.prediction import Prediction
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

# (input index, prediction, error): one of the last two is None.
Outcome = tuple[int, Prediction | None, str | None]
_IN_FLIGHT_PER_ACTOR = 2  # one chunk scoring, one waiting: no actor idles between chunks


class ScoringWorker:
    """The body of one Ray actor: the model, loaded once, scoring one chunk per call."""

    def __init__(
        self,
        model_bytes: bytes,
        device: str,
        batch_size: int | None,
        workers: int = 0,
        on_scored: Callable[[str], None] | None = None,
    ) -> None:
        from mdss_core.devices import samples_per_batch
        from mdss_core.model import MDSSModel

        # From bytes the driver read: the model file need not be on a path every node sees.
        fd, name = tempfile.mkstemp(suffix=".mdss")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(model_bytes)
            self.model = MDSSModel.load(name, device=device)
        finally:
            os.unlink(name)
        self.batch_size = batch_size or samples_per_batch(self.model.device)
        self.workers = workers  # processes preparing samples ahead, inside this actor
        self.on_scored = on_scored  # tests count scoring calls per sample with it

    def score(self, chunk: Sequence[tuple[int, SampleRef]]) -> list[Outcome]:
        from mdss_core.batched import score_batched

        refs = [ref for _, ref in chunk]
        outcomes: list[Outcome] = []
        for (index, _), item in zip(
            chunk, score_batched(self.model, refs, self.batch_size, self.workers), strict=True
        ):
            if self.on_scored is not None:
                self.on_scored(item.ref.key)
            # An unreadable sample travels as its one-line message: all the driver reports.
            error = None if item.error is None else str(item.error)
            outcomes.append((index, item.prediction, error))
        return outcomes


class RayScoring:
    """Scores ``work`` (input index, ref) on ``actors`` actors; :meth:`run` yields each
    sample's :data:`Outcome` once, as chunks finish (not in input order)."""

    def __init__(
        self,
        ray: ModuleType,
        model_path: str | Path,
        work: Sequence[tuple[int, SampleRef]],
        *,
        device: str = "auto",
        batch_size: int | None = None,
        chunk_size: int | None = None,
        actors: int | None = None,
        workers: int | None = None,
        on_scored: Callable[[str], None] | None = None,
    ) -> None:
        self.ray = ray
        gpus = gpu_count(ray) if device != "cpu" else 0
        if gpus:
            # One GPU per actor, and the CPU cores that feed it: reading and preparing a sample
            # takes ~25 ms of one core against ~1 ms on the GPU (mdss_core.batched).
            per_gpu = max(1, cpu_count(ray) // gpus)
            self.workers = min(7, per_gpu - 1) if workers is None else workers
            self.resources = {"num_gpus": 1, "num_cpus": 1 + self.workers}
        else:
            self.workers = workers or 0
            self.resources = {"num_cpus": 1 + self.workers}
        per_actor = self.resources["num_cpus"]
        default_actors = gpus or max(1, cpu_count(ray) // per_actor)
        self.n_actors = max(1, min(actors or default_actors, len(work) or 1))
        self.chunk_size = chunk_size or max(4, batch_size or (32 if gpus else 1))
        self.queue: deque[list[tuple[int, SampleRef]]] = deque(
            list(work[i : i + self.chunk_size]) for i in range(0, len(work), self.chunk_size)
        )
        self.total = len(work)
        self.device, self.batch_size, self.on_scored = device, batch_size, on_scored
        self.model_ref = ray.put(Path(model_path).read_bytes())
        self.actor_class = ray.remote(ScoringWorker)
        self.actors: list[Any] = []
        self.deaths_in_a_row = 0  # since a chunk last came back: a long run survives many
        self.max_deaths_in_a_row = 2 * self.n_actors + 2

    def _new_actor(self) -> Any:
        # max_restarts=0: a dead actor is replaced here, where its lost chunks are known.
        actor = self.actor_class.options(**self.resources, max_restarts=0)
        return actor.remote(
            self.model_ref, self.device, self.batch_size, self.workers, self.on_scored
        )

    def run(
        self, progress: ProgressCallback | None = None, cancel: CancelToken | None = None
    ) -> Iterator[Outcome]:
        ray = self.ray
        if not self.queue:
            return  # everything was restored from the journal: no actor to start
        self.actors = [self._new_actor() for _ in range(self.n_actors)]
        in_flight: dict[Any, tuple[Any, list[tuple[int, SampleRef]]]] = {}
        done: set[int] = set()
        try:
            while self.queue or in_flight:
                self._feed(in_flight)
                check_cancel(cancel, "prediction")
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for future in ready:
                    actor, chunk = in_flight.pop(future)
                    outcomes = self._collect(future, actor, chunk)
                    for outcome in outcomes:
                        if outcome[0] in done:
                            continue  # already written: a chunk is only retried when lost
                        done.add(outcome[0])
                        yield outcome
                        report(progress, "predict", len(done), self.total)
        finally:
            for actor in self.actors:
                ray.kill(actor)

    def _feed(self, in_flight: dict[Any, tuple[Any, list[tuple[int, SampleRef]]]]) -> None:
        for actor in self.actors:
            busy = sum(1 for a, _ in in_flight.values() if a is actor)
            for _ in range(_IN_FLIGHT_PER_ACTOR - busy):
                if not self.queue:
                    return
                chunk = self.queue.popleft()
                in_flight[actor.score.remote(chunk)] = (actor, chunk)

    def _collect(
        self, future: Any, actor: Any, chunk: list[tuple[int, SampleRef]]
    ) -> list[Outcome]:
        """The chunk's outcomes; a dead actor's chunk goes back to the queue (none now)."""
        from ray.exceptions import RayActorError, RayTaskError

        try:
            outcomes = self.ray.get(future)
        except RayActorError:
            self.queue.appendleft(chunk)
            self._replace(actor)
            return []
        except RayTaskError as exc:  # a bug or a failure other than an unreadable sample
            cause = exc.cause if exc.cause is not None else exc
            raise MDSSError(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None
        self.deaths_in_a_row = 0
        return outcomes

    def _replace(self, actor: Any) -> None:
        if actor not in self.actors:
            return  # replaced already, when its other chunk came back lost
        if self.deaths_in_a_row >= self.max_deaths_in_a_row:
            raise MDSSError(
                f"Ray workers died {self.deaths_in_a_row + 1} times in a row (out of memory, "
                "nodes lost, a sample that crashes them?); rerun with --resume to go on"
            )
        self.deaths_in_a_row += 1
        self.actors[self.actors.index(actor)] = self._new_actor()


__all__ = ["Outcome", "RayScoring", "ScoringWorker"]
