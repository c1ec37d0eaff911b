"""Train one model per category of a dataset root: in turn here, or one Ray task each.

A category that fails (unreadable files, no training samples, out of memory) is reported in
one line and the others go on. On Ray each task returns its model file's bytes and the driver
writes ``OUT/<category>.mdss`` atomically, as ``mdss predict --ray`` writes results: the output
folder need only exist here; the dataset must be readable at the same path on every node.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mdss_core.atomic import ensure_writable_folder, write_bytes_atomic
from mdss_core.config import DEFAULT_METHOD, DEFAULT_PRESET
from mdss_core.errors import DataError
from mdss_core.failures import describe, first_line
from mdss_core.io import category_names
from mdss_core.progress import ProgressCallback


@dataclass(frozen=True)
class TrainSettings:
    preset: str = DEFAULT_PRESET
    method: str = DEFAULT_METHOD
    seed: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class CategoryOutcome:
    """One category's end: trained (``path``), skipped (model already there) or failed."""

    category: str
    path: Path | None = None
    error: str | None = None
    skipped: bool = False
    seconds: float = 0.0

    @property
    def line(self) -> str:
        if self.error is not None:
            return f"{self.category}: failed: {self.error}"
        if self.skipped:
            return f"{self.category}: {self.path} exists (use --force to train it again)"
        return f"{self.category}: wrote {self.path} ({self.seconds:.0f} s)"


def categories_to_train(root: str | Path, only: Sequence[str] = ()) -> list[str]:
    names = category_names(root)
    if not names:
        raise DataError(
            root, "no category folders here (train-all takes a dataset root; use mdss train)"
        )
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise DataError(root, f"no category {', '.join(unknown)} here ({', '.join(names)})")
    return [n for n in names if not only or n in only]


def train_category_bytes(
    root: str,
    category: str,
    settings: TrainSettings,
    progress: ProgressCallback | None = None,
) -> bytes:
    """Train ``category`` and return its model file's content (written nowhere else)."""
    from mdss_core.config import get_preset
    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel

    dataset = open_dataset(root, category=category)
    config = get_preset(settings.preset, settings.method).with_seed(settings.seed)
    model = MDSSModel.fit(dataset, config, device=settings.device, progress=progress)
    fd, name = tempfile.mkstemp(suffix=".mdss")
    os.close(fd)
    try:
        model.save(name)
        return Path(name).read_bytes()
    finally:
        os.unlink(name)


def train_all(
    root: str | Path,
    out_dir: str | Path,
    settings: TrainSettings,
    *,
    only: Sequence[str] = (),
    force: bool = False,
    ray_address: str | None = None,
    on_outcome: Callable[[CategoryOutcome], None] | None = None,
    progress: ProgressCallback | None = None,
) -> list[CategoryOutcome]:
    """Train each category of ``root`` into ``out_dir/<category>.mdss``; ``ray_address`` None
    trains them in turn here, "" on a local Ray instance, "auto" or an address on a cluster.
    An existing model file is kept unless ``force``. ``on_outcome`` hears each category's end."""
    names = categories_to_train(root, only)
    out = ensure_writable_folder(out_dir)
    outcomes: list[CategoryOutcome] = []

    def finish(outcome: CategoryOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    todo = []
    for name in names:
        target = out / f"{name}.mdss"
        if target.exists() and not force:
            finish(CategoryOutcome(name, target, skipped=True))
        else:
            todo.append(name)
    if ray_address is None:
        for name in todo:
            started = time.monotonic()
            try:
                data = train_category_bytes(str(root), name, settings, progress)
            except Exception as exc:  # this category only; KeyboardInterrupt stops them all
                finish(CategoryOutcome(name, error=_one_line(exc)))
                continue
            finish(_write(out, name, data, time.monotonic() - started))
    else:
        _train_on_ray(str(root), out, todo, settings, ray_address, finish)
    return outcomes


def _train_on_ray(
    root: str,
    out: Path,
    names: Sequence[str],
    settings: TrainSettings,
    address: str,
    finish: Callable[[CategoryOutcome], None],
) -> None:
    from mdss_core.cluster.ray_env import gpu_count, ray_cluster

    with ray_cluster(address) as ray:
        from ray.exceptions import RayError, RayTaskError

        gpus = 1 if gpu_count(ray) and settings.device != "cpu" else 0
        # max_retries: a task whose worker died (node lost) runs again; an error does not.
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=2)(train_category_bytes)
        started = time.monotonic()
        pending = {task.remote(root, name, settings): name for name in names}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                name = pending.pop(ready[0])
                try:
                    data = ray.get(ready[0])
                except RayTaskError as exc:
                    cause = exc.cause if exc.cause is not None else exc
                    finish(CategoryOutcome(name, error=_one_line(cause)))
                    continue
                except RayError as exc:  # the task was lost for good (workers kept dying)
                    finish(CategoryOutcome(name, error=f"Ray: {first_line(exc)}"))
                    continue
                finish(_write(out, name, data, time.monotonic() - started))
        finally:
            for future in pending:
                ray.cancel(future, force=True)


def _write(out: Path, name: str, data: bytes, seconds: float) -> CategoryOutcome:
    target = write_bytes_atomic(out / f"{name}.mdss", data)
    return CategoryOutcome(name, target, seconds=seconds)


def _one_line(exc: BaseException) -> str:
    return describe(exc) or f"{type(exc).__name__}: {first_line(exc)}"


__all__ = ["CategoryOutcome", "TrainSettings", "categories_to_train", "train_all"]
