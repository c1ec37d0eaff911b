"""Job functions run by background tasks (Qt-free; each takes a TaskContext-like object).

Kept apart from the widgets so they can be tested and reused without a window. None of them
imports torch at module level: the model module is only reached through :mod:`mdss_app.engine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mdss_app import engine
from mdss_core.errors import DataError
from mdss_core.io import DatasetIndex, SampleRef, open_dataset
from mdss_core.prediction import Prediction
from mdss_core.progress import check_cancel, report


def open_folder(path: str | Path, ctx: Any = None) -> DatasetIndex:
    """Index a folder (non-strict: incomplete pairs are listed in ``problems``, not fatal)."""
    try:
        return open_dataset(path, strict=False)
    except DataError as exc:
        if "holds several categories" not in str(exc):
            raise
    # A dataset root with several categories: open the first one and say so in problems.
    root = Path(path)
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for name in names:
        try:
            index = open_dataset(root, category=name, strict=False)
        except DataError:
            continue
        index.problems.insert(0, f"{root}: several categories; opened '{name}'")
        return index
    raise DataError(root, "no category with samples found")


def refs_to_score(dataset: DatasetIndex) -> list[SampleRef]:
    """The test split when there is one (what users inspect), otherwise every sample."""
    test = [r for r in dataset.refs if r.split == "test"]
    return test or list(dataset.refs)


def predict_refs(model: Any, refs: Sequence[SampleRef], ctx: Any) -> list[str]:
    """Predict each ref, emitting ``(ref, prediction)`` as it finishes.

    A sample whose files are broken is skipped (its one-line message is returned) so one bad
    file does not stop the folder from being scored.
    """
    problems: list[str] = []
    total = len(refs)
    for i, ref in enumerate(refs):
        check_cancel(ctx.cancel, "prediction")
        try:
            for done_ref, prediction in engine.predict_many(model, [ref], cancel=ctx.cancel):
                ctx.emit((done_ref, prediction))
        except DataError as exc:
            problems.append(str(exc))
        report(ctx.progress, "predict", i + 1, total, ref.key)
    return problems


def evaluate_predictions(items: Sequence[tuple[SampleRef, Prediction]], ctx: Any) -> Any:
    """I-AUROC / AUPRO table and ROC / PRO curves from predictions already made.

    Returns ``None`` when no scored sample carries a label; the numbers match ``mdss evaluate``.
    """
    from mdss_core.evaluation import evaluate_predictions

    return evaluate_predictions(items, len(items), ctx.progress, ctx.cancel)


def export_results(
    items: Sequence[tuple[SampleRef, Prediction]],
    out_dir: str | Path,
    ctx: Any,
    pixel_threshold: float | None = None,
    image_threshold: float | None = None,
) -> Path:
    """Per-sample maps (TIFF) and overlays (PNG) plus ``scores.csv``; returns the CSV path.

    With thresholds given, overlays and decisions use them (what the user tuned on screen)
    instead of the model's; the predictions shown in the window are not modified.
    """
    from mdss_core.atomic import ensure_writable_folder
    from mdss_core.export import ResultWriter
    from mdss_core.regions import with_thresholds

    out = ensure_writable_folder(out_dir)  # a read-only target fails before any file is made
    writer = ResultWriter(out, overlays=("fused", "rgb", "3d"))
    for i, (ref, prediction) in enumerate(items):
        check_cancel(ctx.cancel, "export")
        writer.add(ref, with_thresholds(prediction, pixel_threshold, image_threshold))
        report(ctx.progress, "export", i + 1, len(items), ref.key)
    return writer.close()
