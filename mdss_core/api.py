"""The engine as a front end sees it: the one module the desktop inspector imports.

Types are re-exported from where they live; functions that need the networks import them when
called, so importing this module never imports torch. A GUI can therefore import it on its UI
thread and run the calls that load, train or score in background tasks; calls that only touch
arrays (regions at a threshold, a pixel's scores) are cheap NumPy/OpenCV.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from mdss_core.checkpoint import CheckpointInfo
from mdss_core.errors import Cancelled, DataError, MDSSError, ModelFileError, WriteError
from mdss_core.evaluation import EvaluationReport, evaluate_predictions
from mdss_core.failures import describe, first_line
from mdss_core.io.layout import DatasetIndex, category_names, open_dataset
from mdss_core.io.sample import Sample, SampleRef
from mdss_core.overlay_render import (
    FADE,
    SCORE_COLORMAP,
    display_ceiling,
    fade_alpha,
    score_colours,
)
from mdss_core.prediction import Prediction, Region, RegionSet, Scored, relative_score
from mdss_core.progress import CancelToken, Progress, ProgressCallback, check_cancel, report
from mdss_core.regions import local_scores, pixel_area_mm2, regions_at, with_thresholds
from mdss_core.roi import Roi, make_roi

MODEL_SUFFIX = ".mdss"


class Model(Protocol):
    """What a front end needs of a trained model (:class:`mdss_core.model.MDSSModel`)."""

    name: str
    device: str

    @property
    def image_threshold(self) -> float: ...

    @property
    def pixel_threshold(self) -> float: ...

    def info(self) -> dict[str, Any]: ...

    def score_many(
        self,
        refs: Iterable[SampleRef],
        progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None,
        batch_size: int = 1,
        workers: int = 0,
    ) -> Iterator[Scored]: ...

    def save(self, path: str | Path, half: bool = False) -> Path: ...

    @property
    def roi(self) -> Roi | None: ...

    def with_roi(self, roi: Roi | None) -> Model: ...


# ----------------------------------------------------------------------------- data
def open_folder(path: str | Path, category: str | None = None) -> DatasetIndex:
    """Index a folder for browsing: incomplete pairs are listed in ``problems``, not fatal.

    A dataset root with several categories opens ``category``, or the first one that has
    samples (saying so in ``problems``).
    """
    if category is not None:
        return open_dataset(path, category=category, strict=False)
    names = category_names(path)
    if len(names) <= 1:
        return open_dataset(path, strict=False)
    for name in names:
        try:
            index = open_dataset(path, category=name, strict=False)
        except DataError:
            continue
        index.problems.insert(0, f"{path}: several categories; opened '{name}'")
        return index
    raise DataError(path, "no category with samples found")


def refs_to_score(dataset: DatasetIndex) -> list[SampleRef]:
    """The test split when there is one (what users inspect), otherwise every sample."""
    test = [r for r in dataset.refs if r.split == "test"]
    return test or list(dataset.refs)


# ----------------------------------------------------------------------------- models
@contextmanager
def _file_errors(path: str | Path, what: str) -> Iterator[None]:
    """A reader's unexpected exception as a one-line ModelFileError naming the file."""
    try:
        yield
    except MDSSError:
        raise
    except (Exception, MemoryError) as exc:
        raise ModelFileError(path, f"{what} ({first_line(exc)})") from None


def load_model(path: str | Path, device: str = "auto", backend: str | None = None) -> Model:
    """A ``.mdss`` file (torch unless ``backend`` names a runtime) or an ``mdss export``
    folder (on its own runtime unless ``backend`` says otherwise)."""
    from mdss_core.backends.load import load_on_backend

    with _file_errors(path, "not a usable model file"):
        return load_on_backend(path, backend, device)


def fit_model(
    dataset: DatasetIndex,
    preset: str,
    *,
    method: str = "mdss",
    teacher: str | Path | None = None,
    device: str = "auto",
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    checkpoint_for: str | Path | None = None,
    resume: bool = False,
) -> Model:
    """Train and calibrate a model of detector ``method`` (``Model.save`` writes it;
    ``teacher`` only applies to MDSS). With ``checkpoint_for`` (the model path to be) the
    training keeps a checkpoint beside it while training and on cancel; ``resume`` continues
    it (refused, one line, for other data, settings or detector)."""
    from mdss_core.checkpoint import Checkpointer, checkpoint_path
    from mdss_core.config import get_preset
    from mdss_core.model import MDSSModel

    checkpoint = None
    if checkpoint_for is not None:
        checkpoint = Checkpointer(checkpoint_path(checkpoint_for), resume=resume)
    return MDSSModel.fit(
        dataset,
        get_preset(preset, method),
        teacher=teacher,
        device=device,
        progress=progress,
        cancel=cancel,
        checkpoint=checkpoint,
    )


def checkpoint_info(model_path: str | Path) -> CheckpointInfo | None:
    """The unfinished training saved for ``model_path`` (stage, step k of n), or ``None``.
    Reads a small header only (no torch): fine on a UI thread."""
    from mdss_core.checkpoint import checkpoint_path, read_info

    return read_info(checkpoint_path(model_path))


def remove_checkpoint(model_path: str | Path) -> None:
    """After the model is saved: its training's checkpoint has served."""
    from mdss_core.checkpoint import checkpoint_path

    checkpoint_path(model_path).unlink(missing_ok=True)


def check_teacher_file(path: str | Path) -> dict[str, Any]:
    """Where a teacher weight file comes from; a file that cannot serve raises one line."""
    from mdss_core.rgb.teacher import load_teacher_file

    with _file_errors(path, "not a usable teacher file"):
        return load_teacher_file(path)[1]


def preset_names(method: str = "mdss") -> list[str]:
    from mdss_core.config import METHODS

    return list(METHODS.get(method, {}))


def method_names() -> list[tuple[str, str]]:
    """``[(method, one-line description), …]`` of the detectors a model can be trained with."""
    from mdss_core.config import METHOD_DESCRIPTIONS

    return list(METHOD_DESCRIPTIONS.items())


# What each view's colour scale means, by the model's fusion rule (see mdss_core.fusion).
MAP_CAPTIONS: dict[str, dict[str, str]] = {
    "paper": {
        "rgb": "RGB student–teacher score (3D scale)",
        "fused": "fused score = max(RGB, 3D)",
        "cloud": "|sdf|",
    },
    "zscore": {
        "rgb": "RGB score (std. dev. above normal)",
        "fused": "fused = RGB + 3D (std. dev. above normal)",
        "cloud": "|sdf| (σ)",
    },
    "zmax": {
        "rgb": "RGB branch (std. dev. above normal)",
        "fused": "fused = RGB + 3D branch (std. dev. above normal)",
        "cloud": "3D branch (σ)",
    },
}


def map_captions(model: Model | None) -> dict[str, str]:
    """The colour-scale captions of the views for ``model`` (the paper's without a model)."""
    info = model.info() if model is not None else {}
    captions = dict(MAP_CAPTIONS.get(info.get("fusion", "paper"), MAP_CAPTIONS["paper"]))
    if "normals" in info.get("geometry_maps", ()):
        captions["cloud"] = "|sdf| & normals (σ)"  # the mean of their z-scores
    return captions


def model_identity(model: Model) -> tuple[str, str]:
    """A short label (name · preset · teacher) and a longer description of what a model is:
    two models of one category must be told apart at a glance."""
    info = model.info()
    training = info.get("training") or {}
    teacher = info.get("teacher") or {}
    method = info.get("method", "mdss")
    parts = (info.get("name"), method if method != "mdss" else "", info.get("preset"))
    label = " · ".join(part for part in (*parts, teacher.get("kind")) if part)
    lines = [
        f"category: {training.get('category') or '?'}, trained on {training.get('n_train', '?')}"
        + (f" (samples {training['training_set']})" if training.get("training_set") else ""),
        f"method: {method}, preset: {info.get('preset')}, fusion: {info.get('fusion', 'paper')}",
        f"teacher: {info.get('teacher_text') or teacher.get('kind', '?')}",
    ]
    return label, "\n".join(lines)


def category_mismatch(model: Model, dataset: DatasetIndex) -> str | None:
    """Why ``model`` should not score ``dataset`` (trained on another category), or None.

    Only categories both sides name are compared: a plain folder of samples has none, and
    then the user's choice stands."""
    trained_on = (model.info().get("training") or {}).get("category") or ""
    holds = getattr(dataset, "category", "") or ""
    if not trained_on or not holds or trained_on == holds:
        return None
    return (
        f"model '{model.info().get('name')}' was trained on '{trained_on}', the folder holds "
        f"'{holds}': its scores and thresholds do not apply to other parts"
    )


def default_preset() -> str:
    from mdss_core.config import DEFAULT_PRESET

    return DEFAULT_PRESET


def teacher_names() -> list[str]:
    """The built-in teachers a training run can use, the default first."""
    from mdss_core.rgb.teacher_choice import DEFAULT_TEACHER, TEACHER_NAMES

    return [DEFAULT_TEACHER, *(n for n in TEACHER_NAMES if n != DEFAULT_TEACHER)]


def available_devices() -> list[tuple[str, str]]:
    """``[(value, label), …]`` for a device menu (imports torch: call from a background task)."""
    from mdss_core.devices import available_devices

    return available_devices()


def device_label(device: str) -> str:
    """Status-bar name of a device (imports torch: call from a background task)."""
    from mdss_core.devices import device_label

    return device_label(device)


# ----------------------------------------------------------------------------- scoring
def score_folder(
    model: Model,
    refs: Sequence[SampleRef],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
) -> Iterator[Scored]:
    """One :class:`Scored` per ref, in order, as they finish; a sample that cannot be read or
    prepared carries its one-line error and the run goes on.

    Batching and preparing workers follow the device (:mod:`mdss_core.devices`) unless given.
    """
    from mdss_core.devices import preparing_workers, samples_per_batch

    batch = samples_per_batch(model.device) if batch_size is None else batch_size
    workers = preparing_workers(model.device) if workers is None else workers
    return model.score_many(refs, progress, cancel, batch_size=batch, workers=workers)


def evaluate(
    items: Sequence[tuple[SampleRef, Prediction]],
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> EvaluationReport | None:
    """I-AUROC / AUPRO table and curves of scored samples, as ``mdss evaluate`` computes them;
    ``None`` when none of them is labelled."""
    return evaluate_predictions(items, len(items), progress, cancel)


def export_results(
    items: Sequence[tuple[SampleRef, Prediction]],
    out_dir: str | Path,
    pixel_threshold: float | None = None,
    image_threshold: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    *,
    model: Model | None = None,
    data_folder: str | Path = "",
    errors: Sequence[str] = (),
    evaluation: EvaluationReport | None = None,
) -> Path:
    """Each sample's maps (TIFF) and annotated overlays of every modality (PNG), then
    ``regions.csv``, ``report.html`` and ``scores.csv``, judged with the given thresholds;
    returns the CSV's path. ``model`` names the model in the files, ``data_folder`` and
    ``errors`` (samples that could not be scored) go into the report, and so does
    ``evaluation`` (what :func:`evaluate` gave for these items) instead of the report's own
    pooled metrics, when it matches the items. The predictions are unchanged."""
    from mdss_core.atomic import ensure_writable_folder
    from mdss_core.export import ResultWriter
    from mdss_core.regions import with_thresholds

    out = ensure_writable_folder(out_dir)  # a read-only target fails before any file is made
    info = model.info() if model is not None else None
    writer = ResultWriter(
        out, ("fused", "rgb", "3d"), info, data_folder=data_folder, evaluation=evaluation
    )
    for error in errors:
        writer.note_error(error)
    for i, (ref, prediction) in enumerate(items):
        check_cancel(cancel, "export")
        writer.add(ref, with_thresholds(prediction, pixel_threshold, image_threshold))
        report(progress, "export", i + 1, len(items), ref.key)
    return writer.close()


# ----------------------------------------------------------------------------- region of interest
def with_roi(model: Model, roi: Roi | None) -> Model:
    """A model like ``model`` (same networks, same calibration) that judges only ``roi``
    (``None``: the whole image); ``model`` itself is unchanged. Re-score to see the effect."""
    return model.with_roi(roi)


def save_model(model: Model, path: str | Path) -> Path:
    """Write ``model`` atomically to ``path`` (the caller has asked before replacing a file)."""
    return model.save(path)


# ----------------------------------------------------------------------------- feedback
def with_extra_good(dataset: DatasetIndex, folders: Sequence[str | Path]) -> DatasetIndex:
    """``dataset`` with the good samples of each folder (e.g. parts an inspector marked as
    good after a false alarm) added to its ``train`` split; a folder without any raises one
    ``DataError`` line."""
    from mdss_core.io.layout import with_extra_good

    return with_extra_good(dataset, folders)


def copy_file_atomic(source: str | Path, target: str | Path) -> Path:
    """Copy ``source`` to ``target`` through a temp file and a rename (never moved, never a
    half-written target); a failure raises one ``WriteError`` line."""
    import shutil

    from mdss_core.atomic import atomic_write

    return atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))


def write_text_atomic(path: str | Path, text: str) -> Path:
    from mdss_core.atomic import write_bytes_atomic

    return write_bytes_atomic(path, text.encode("utf-8"))


# ----------------------------------------------------------------------------- demo
def demo_dataset() -> Path:
    """The built-in demo category, generated on first use (a few seconds)."""
    from mdss_core.demo import ensure_demo_dataset

    return Path(ensure_demo_dataset())


def demo_model_path() -> Path | None:
    """The shipped demo model, else one trained into the cache earlier, else ``None``."""
    from mdss_core.demo import demo_model_path

    return demo_model_path()


def demo_model_target() -> Path:
    """Where a demo model trained on this machine is kept (found by :func:`demo_model_path`)."""
    from mdss_core.demo import DEMO_MODEL_NAME, cache_dir

    return cache_dir() / DEMO_MODEL_NAME


__all__ = [
    "MODEL_SUFFIX",
    "SCORE_COLORMAP",
    "FADE",
    "Cancelled",
    "CancelToken",
    "DataError",
    "DatasetIndex",
    "EvaluationReport",
    "MDSSError",
    "Model",
    "ModelFileError",
    "Prediction",
    "Progress",
    "ProgressCallback",
    "Region",
    "RegionSet",
    "Roi",
    "Sample",
    "SampleRef",
    "Scored",
    "WriteError",
    "available_devices",
    "category_names",
    "CheckpointInfo",
    "checkpoint_info",
    "remove_checkpoint",
    "check_cancel",
    "check_teacher_file",
    "demo_dataset",
    "demo_model_path",
    "demo_model_target",
    "describe",
    "device_label",
    "display_ceiling",
    "evaluate",
    "export_results",
    "fade_alpha",
    "first_line",
    "fit_model",
    "load_model",
    "method_names",
    "local_scores",
    "open_folder",
    "pixel_area_mm2",
    "preset_names",
    "refs_to_score",
    "relative_score",
    "category_mismatch",
    "default_preset",
    "map_captions",
    "model_identity",
    "teacher_names",
    "regions_at",
    "report",
    "score_colours",
    "score_folder",
    "with_thresholds",
    "make_roi",
    "with_extra_good",
    "copy_file_atomic",
    "write_text_atomic",
    "save_model",
    "with_roi",
]
