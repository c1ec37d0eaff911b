"""A resumable scoring run into one output folder, scored here or on Ray actors.

The driver (this process) writes every file through :class:`ResultWriter`, which fixes each
sample's names and row in input order first (:meth:`ResultWriter.plan`): results arriving in
any order, or restored from the journal of an interrupted run, give the files and CSVs of one
plain pass. Each written sample is journalled (:mod:`mdss_core.cluster.journal`); with
``resume`` the samples the journal lists are restored, not scored again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mdss_core.atomic import ensure_writable_folder
from mdss_core.cluster.journal import RunJournal, journal_header, read_journal
from mdss_core.errors import MDSSError
from mdss_core.export import ResultWriter, sample_identity
from mdss_core.io.sample import SampleRef
from mdss_core.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:
    from mdss_core.model import MDSSModel

# An outcome is (input index, prediction, error); see mdss_core.cluster.scoring.
Outcome = tuple[int, Any, str | None]
Work = tuple[int, SampleRef]  # (input index, sample)


@dataclass
class RunOptions:
    """How to score: ``ray_address`` None scores in this process; "" starts a local Ray
    instance; "auto" or ``host:port`` joins a cluster."""

    overlays: Sequence[str] = ("fused",)
    data_folder: str = ""
    device: str = "auto"
    batch_size: int | None = None
    workers: int | None = None
    ray_address: str | None = None
    actors: int | None = None
    chunk_size: int | None = None
    resume: bool = False
    on_scored: Callable[[str], None] | None = None  # called where each sample is scored


@dataclass
class RunSummary:
    total: int
    written: int = 0  # samples whose files this run wrote
    restored: int = 0  # samples an earlier run had written (from the journal)
    flagged: int = 0
    skipped: list[str] = field(default_factory=list)
    csv_path: Path | None = None
    report_path: Path | None = None


def predict_to_folder(
    model_path: str | Path,
    refs: Sequence[SampleRef],
    out_dir: str | Path,
    options: RunOptions,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    summary: RunSummary | None = None,
) -> RunSummary:
    """Score ``refs`` into ``out_dir`` (maps, overlays, CSVs, report, journal).

    ``summary`` (optional) is filled as the run goes, so that a caller whose run stopped
    (cancelled, interrupted) can still say how much is on disk.
    """
    from mdss_core.cluster.ray_env import ray_cluster
    from mdss_core.model import MDSSModel

    on_ray = options.ray_address is not None
    # On Ray the driver only needs the model's identity: the actors hold the networks.
    model = MDSSModel.load(model_path, device="cpu" if on_ray else options.device)
    summary = summary if summary is not None else RunSummary(len(refs))
    # Ray first: a missing install or an unreachable cluster leaves the output folder as it was.
    with ray_cluster(options.ray_address) if on_ray else nullcontext() as ray:
        writer, todo = _open_run(model, model_path, refs, out_dir, options, summary)
        if ray is not None:
            outcomes = _on_ray(ray, model_path, todo, options, progress, cancel, writer.model_info)
        else:
            outcomes = _here(model, todo, options, progress, cancel)
        for index, prediction, error in outcomes:
            if prediction is None:
                summary.skipped.append(str(error))
                writer.note_error(str(error))
                continue
            writer.add(refs[index], prediction)
            summary.written += 1
            summary.flagged += bool(prediction.is_anomalous)
    if summary.skipped and not writer.written:
        raise MDSSError(summary.skipped[0])  # nothing scored: the first failure says why
    summary.csv_path = writer.close()
    summary.report_path = writer.report_path
    return summary


def _open_run(
    model: MDSSModel,
    model_path: str | Path,
    refs: Sequence[SampleRef],
    out_dir: str | Path,
    options: RunOptions,
    summary: RunSummary,
) -> tuple[ResultWriter, list[Work]]:
    """The writer, its journal (continued with ``resume``) and the samples left to score."""
    out = ensure_writable_folder(out_dir)
    header = journal_header(model_path, options.overlays)
    finished = read_journal(out, header) if options.resume else None
    journal = RunJournal.start(out, header) if finished is None else RunJournal.at(out)
    writer = ResultWriter(
        out, options.overlays, model.info(), options.data_folder, on_written=journal.append
    )
    writer.plan(refs)
    return writer, _restore(writer, refs, finished or [], summary)


def _restore(
    writer: ResultWriter, refs: Sequence[SampleRef], entries: list[dict], summary: RunSummary
) -> list[Work]:
    """Restore the journalled samples that are among ``refs``; the others are left to do."""
    by_id = {sample_identity(ref): ref for ref in refs}
    restored: set[str] = set()
    for entry in entries:
        ref = by_id.get(entry["id"])
        if ref is None or entry["id"] in restored:
            continue  # not asked for this time, or journalled twice by an older run
        writer.restore(ref, entry)
        restored.add(entry["id"])
        summary.restored += 1
        summary.flagged += entry["row"]["decision"] == "anomalous"
    return [(i, ref) for i, ref in enumerate(refs) if sample_identity(ref) not in restored]


def _here(
    model: MDSSModel,
    todo: list[Work],
    options: RunOptions,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
) -> Iterator[Outcome]:
    from mdss_core import api

    refs = [ref for _, ref in todo]
    scored = api.score_folder(
        model, refs, progress, cancel, batch_size=options.batch_size, workers=options.workers
    )
    for (index, _), item in zip(todo, scored, strict=False):
        if options.on_scored is not None:
            options.on_scored(item.ref.key)
        error = None if item.error is None else str(item.error)
        yield index, item.prediction, error


def _on_ray(
    ray: ModuleType,
    model_path: str | Path,
    todo: list[Work],
    options: RunOptions,
    progress: ProgressCallback | None,
    cancel: CancelToken | None,
    info: dict[str, Any],
) -> Iterator[Outcome]:
    from mdss_core.cluster.ray_env import gpu_count
    from mdss_core.cluster.scoring import RayScoring

    on_gpu = gpu_count(ray) > 0 and options.device != "cpu"
    info["device"] = "cuda" if on_gpu else "cpu"  # where the actors score, not the driver
    scoring = RayScoring(
        ray,
        model_path,
        todo,
        device=options.device,
        batch_size=options.batch_size,
        chunk_size=options.chunk_size,
        actors=options.actors,
        workers=options.workers,
        on_scored=options.on_scored,
    )
    yield from scoring.run(progress, cancel)


__all__ = ["RunOptions", "RunSummary", "predict_to_folder"]
