"""Writing results users keep: float32 TIFF maps, annotated PNG overlays, ``scores.csv`` (one
row per sample), ``regions.csv`` (one row per defect region), ``report.html``, JSON.

Output names keep the input's defect folder and sample id (``OUT/hole/003_fused.tiff``) so
downstream tools can match results to inputs; a second sample with the same folder and id
(e.g. from another split) goes under its split (``OUT/validation/good/000_fused.tiff``).
Files are written to a temporary name and renamed (:mod:`mdss_core.atomic`), so a crash never
leaves half a file; what killed runs left in a folder is swept the first time it is written to.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from mdss_core.atomic import atomic_write, sweep_stale_temps
from mdss_core.errors import MDSSError
from mdss_core.evaluation import MODALITIES, EvaluationReport, ScoredSample, ground_truth
from mdss_core.failures import first_line
from mdss_core.io.readers import read_rgb, read_xyz
from mdss_core.io.sample import GOOD, SampleRef
from mdss_core.io.writers import write_png, write_tiff
from mdss_core.metrics import aupro, auroc, auroc_interval, roc_curve
from mdss_core.overlay_render import (
    OPACITY,
    PREDICTION_COLOUR,
    OverlayCaption,
    blend_scores,
    display_ceiling,
    draw_outline,
    render_overlay,
)
from mdss_core.prediction import Prediction, Region, RegionSet
from mdss_core.regions import decision_regions, find_regions, pixel_area_mm2
from mdss_core.report_html import REPORT_NAME, ReportData, ReportSample, write_report

CSV_COLUMNS = (
    "key", "split", "defect", "sample_id", "label", "score_rgb", "score_3d", "score_fused",
    "score_relative", "image_threshold", "pixel_threshold", "decision", "regions",
    "largest_region_px",
    # Appended later (scripts reading the columns above keep working):
    "model_name", "model_category", "model_preset", "model_teacher", "largest_region_mm2",
    "region_list",
)  # fmt: skip
# One row per region of regions.csv; boxes in pixels, x = column, y = row, ends exclusive.
REGION_COLUMNS = (
    "key", "region", "x0", "y0", "x1", "y1", "centroid_x", "centroid_y", "area_px", "area_mm2",
    "peak_fused", "mean_fused", "peak_rgb", "peak_3d", "driver", "kind",
)  # fmt: skip
MAP_LABELS = {
    "fused": "colours: fused score",
    "rgb": "colours: RGB score (on the 3D scale)",
    "3d": "colours: 3D score",
}


def sample_identity(ref: SampleRef) -> str:
    """What names a sample across runs: its key and its RGB file (two inputs may share keys)."""
    return f"{ref.key}\t{ref.rgb_path}"


def write_json_atomic(path: str | Path, data: Any) -> Path:
    text = json.dumps(data, indent=2, default=_json_default)
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def heat_overlay(
    rgb: np.ndarray, score_map: np.ndarray, threshold: float, alpha: float = OPACITY
) -> np.ndarray:
    """RGB image tinted by the score map in the inspector's colours (``threshold`` mid-scale),
    with the outline of the map at ``threshold``; no bands (see :func:`render_overlay`)."""
    blended = blend_scores(rgb, score_map, display_ceiling(threshold, [score_map]), alpha)
    draw_outline(blended, score_map >= threshold, PREDICTION_COLOUR, 1)
    return blended


def model_fields(info: dict[str, Any] | None) -> dict[str, str]:
    """The model identity columns of ``scores.csv`` from ``Model.info()`` (empty without one)."""
    info = info or {}
    teacher = info.get("teacher") or {}
    return {
        "model_name": str(info.get("name") or ""),
        "model_category": str((info.get("training") or {}).get("category") or ""),
        "model_preset": str(info.get("preset") or ""),
        "model_teacher": str(info.get("teacher_text") or teacher.get("kind") or ""),
    }


def region_record(key: str, index: int, region: Region, kind: str = "defect") -> dict[str, Any]:
    """One row of ``regions.csv`` (``kind``: "defect" above the pixel threshold, or "peak":
    the hottest spot of a part flagged by its image score alone)."""
    row0, col0, row1, col1 = region.bbox
    return {
        "key": key,
        "region": index,
        "x0": col0,
        "y0": row0,
        "x1": col1,
        "y1": row1,
        "centroid_x": f"{region.centroid[1]:.1f}",
        "centroid_y": f"{region.centroid[0]:.1f}",
        "area_px": region.area_px,
        "area_mm2": _mm2(region.area_mm2),
        "peak_fused": f"{region.max_fused:.6g}",
        "mean_fused": f"{region.mean_fused:.6g}",
        "peak_rgb": f"{region.max_rgb:.6g}",
        "peak_3d": f"{region.max_3d:.6g}",
        "driver": region.driver,
        "kind": kind,
    }


def region_list(regions: RegionSet) -> str:
    """The compact region column: ``x0 y0 x1 y1 area_px area_mm2`` per region, ``;`` between."""
    parts = []
    for region in regions:
        row0, col0, row1, col1 = region.bbox
        parts.append(f"{col0} {row0} {col1} {row1} {region.area_px} {_mm2(region.area_mm2)}")
    return ";".join(parts)


def _mm2(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _area(ref: SampleRef, prediction: Prediction) -> Callable[[], np.ndarray]:
    """Each pixel's mm² footprint, read from the cloud only when a region needs it (zero,
    i.e. unknown areas, when the cloud cannot be read again)."""

    def area() -> np.ndarray:
        try:
            xyz = read_xyz(ref.xyz_path)
        except (MDSSError, OSError):
            xyz = None
        if xyz is None or xyz.shape[:2] != prediction.shape:
            return np.zeros(prediction.shape, np.float32)
        return pixel_area_mm2(xyz, prediction.object_mask)

    return area


def regions_with_areas(ref: SampleRef, prediction: Prediction) -> RegionSet:
    """The prediction's regions with their areas in mm²; regions recomputed at another
    threshold (:func:`with_thresholds`) lack them, so the cloud is read again for those.
    A cloud that cannot be read leaves the areas unknown (empty), not the export failed."""
    regions = prediction.regions
    if all(r.area_mm2 is not None for r in regions):
        return regions
    try:
        xyz = read_xyz(ref.xyz_path)
    except (MDSSError, OSError):
        return regions
    if xyz.shape[:2] != prediction.shape:
        return regions
    area = pixel_area_mm2(xyz, prediction.object_mask)
    return find_regions(
        prediction.fused_map, prediction.rgb_map_aligned, prediction.map_3d, regions.threshold, area
    )


class ResultWriter:
    """Collects predictions into ``out_dir``; :meth:`close` writes ``regions.csv``,
    ``report.html`` and ``scores.csv``.

    Per sample: each modality's map as float32 TIFF, and an annotated PNG overlay for each
    modality named in ``overlays`` ("fused", "rgb", "3d"; the RGB overlay shows the map on the
    3D scale). ``model_info`` (``Model.info()``) names the model in the CSV, the overlays and
    the report; ``data_folder`` is what the report says was scored. ``evaluation``: metrics
    already computed for exactly these samples (the inspector's), used instead of computing
    :func:`pooled_evaluation` when its samples and scores match the labelled ones written.
    ``on_written``: called with each sample's records (JSON-ready) once its files are all
    written (the run journal of :mod:`mdss_core.cluster.journal`); :meth:`restore` takes them
    back, so that a resumed run need not score that sample again.
    """

    def __init__(
        self,
        out_dir: str | Path,
        overlays: Sequence[str] = ("fused",),
        model_info: dict[str, Any] | None = None,
        data_folder: str | Path = "",
        report: bool = True,
        evaluation: EvaluationReport | None = None,
        on_written: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.overlays = tuple(overlays)
        self.model_info = dict(model_info or {})
        self.data_folder = str(data_folder)
        self.report = report
        self.evaluation = evaluation
        self.rows: list[dict[str, Any]] = []
        self.region_rows: list[dict[str, Any]] = []
        self.samples: list[ReportSample] = []
        self.errors: list[str] = []
        self._labelled: list[ScoredSample] = []
        self._row_ids: list[str] = []  # the sample identity of each entry of rows / samples
        self._used: set[Path] = set()
        self._swept: set[Path] = set()
        self.on_written = on_written
        self._planned: dict[str, Path] = {}  # sample identity → output stem, in input order
        self._order: dict[str, int] = {}

    @property
    def written(self) -> int:
        """Samples whose files are all written (``scores.csv`` is only written by close)."""
        return len(self.rows)

    def note_error(self, message: str) -> None:
        """A sample that could not be scored: the report lists it."""
        self.errors.append(str(message))

    def _folder(self, folder: Path) -> Path:
        if folder not in self._swept:
            self._swept.add(folder)
            sweep_stale_temps(folder)
        return folder

    def stem_for(self, ref: SampleRef) -> Path:
        folder = Path(ref.defect or "samples")
        stem = folder / ref.sample_id
        if stem in self._used:
            stem = Path(ref.split or "other") / stem
        self._used.add(stem)
        return stem

    def plan(self, refs: Iterable[SampleRef]) -> None:
        """Fix every sample's output names and its row's place now, in input order, so that
        samples arriving in any order (from several workers, or some restored from a journal)
        give the same files and CSVs as one pass in order."""
        for ref in refs:
            identity = sample_identity(ref)
            if identity not in self._planned:
                self._order[identity] = len(self._order)
                self._planned[identity] = self.stem_for(ref)

    def _stem(self, ref: SampleRef) -> Path:
        planned = self._planned.get(sample_identity(ref))
        return planned if planned is not None else self.stem_for(ref)

    def add(self, ref: SampleRef, prediction: Prediction, rgb: np.ndarray | None = None) -> Path:
        relative = self._stem(ref)
        stem = self.out_dir / relative
        self._folder(stem.parent)
        for name, image in prediction.maps().items():
            target = stem.parent / f"{stem.name}_{name}.tiff"
            atomic_write(target, lambda tmp, im=image: write_tiff(tmp, im.astype(np.float32)))
        gt = ground_truth(ref, prediction.shape) if ref.gt_path is not None else None
        pngs = self._write_overlays(ref, prediction, stem, rgb, gt)
        regions = decision_regions(
            prediction, regions_with_areas(ref, prediction), _area(ref, prediction)
        )
        kind = "peak" if regions.threshold < prediction.pixel_threshold else "defect"
        row = self._row(ref, prediction, regions)
        region_rows = [region_record(ref.key, i, r, kind) for i, r in enumerate(regions, 1)]
        links = {name: f"{relative.as_posix()}_{name}_overlay.png" for name in pngs}
        sample = ReportSample.of(ref, prediction, regions, links)
        self._keep(ref, row, region_rows, sample)
        if self.report:
            self._keep_for_metrics(ref, prediction, gt)
        if self.on_written is not None:
            self.on_written(
                {
                    "id": sample_identity(ref),
                    "row": row,
                    "regions": region_rows,
                    "report": asdict(sample),
                    "scores": prediction.scores(),
                }
            )
        return relative

    def _keep(
        self,
        ref: SampleRef,
        row: dict[str, Any],
        region_rows: list[dict[str, Any]],
        sample: ReportSample,
    ) -> None:
        self.rows.append(row)
        self.region_rows += region_rows
        self.samples.append(sample)
        self._row_ids.append(sample_identity(ref))

    def restore(self, ref: SampleRef, entry: dict[str, Any]) -> None:
        """Take back a sample written by an earlier run (its ``on_written`` records): its
        rows and report line, and, for the report's metrics, its maps read back from its TIFF
        files (written as float32, as they are computed), without scoring it again."""
        sample = ReportSample(**{**entry["report"], "overlays": dict(entry["report"]["overlays"])})
        self._keep(ref, dict(entry["row"]), [dict(r) for r in entry["regions"]], sample)
        if not self.report or (ref.label < 0 and ref.gt_path is None):
            return
        import tifffile

        stem = self.out_dir / self._stem(ref)
        maps = {m: tifffile.imread(stem.parent / f"{stem.name}_{m}.tiff") for m in MODALITIES}
        shape = maps["fused"].shape
        gt = ground_truth(ref, shape) if ref.gt_path is not None else None
        label = ref.label if ref.label >= 0 else int(gt.any())
        defect = ref.defect or ("anomalous" if label else GOOD)
        mask = gt if gt is not None else np.zeros(shape, bool)
        scores = {m: float(entry["scores"][m]) for m in MODALITIES}
        self._labelled.append(ScoredSample(ref.key, defect, label, scores, maps, mask))

    def _keep_for_metrics(
        self, ref: SampleRef, prediction: Prediction, gt: np.ndarray | None
    ) -> None:
        """A labelled sample's scores and maps, for the report's I-AUROC / AUPRO (as
        ``mdss evaluate`` keeps them); unlabelled samples keep nothing."""
        if ref.label < 0 and gt is None:
            return
        label = ref.label if ref.label >= 0 else int(gt.any())
        defect = ref.defect or ("anomalous" if label else GOOD)
        mask = gt if gt is not None else np.zeros(prediction.shape, bool)
        scores, maps = prediction.scores(), prediction.maps()
        self._labelled.append(ScoredSample(ref.key, defect, label, scores, maps, mask))

    def _write_overlays(
        self,
        ref: SampleRef,
        prediction: Prediction,
        stem: Path,
        rgb: np.ndarray | None,
        gt: np.ndarray | None,
    ) -> list[str]:
        if not self.overlays:
            return []
        rgb = read_rgb(ref.rgb_path) if rgb is None else rgb
        shown = {**prediction.maps(), "rgb": prediction.rgb_map_aligned}
        for name in self.overlays:
            caption = OverlayCaption(
                sample_key=ref.key,
                map_label=MAP_LABELS.get(name, name),
                score=prediction.score_fused,
                score_relative=prediction.score_relative,
                anomalous=prediction.is_anomalous,
                model_name=self.model_info.get("name") or "?",
                pixel_threshold=prediction.pixel_threshold,
            )
            overlay = render_overlay(rgb, shown[name], caption, gt, grey_base=name == "fused")
            target = stem.parent / f"{stem.name}_{name}_overlay.png"
            atomic_write(target, lambda tmp, im=overlay: write_png(tmp, im))
        return list(self.overlays)

    def _row(self, ref: SampleRef, prediction: Prediction, regions: RegionSet) -> dict[str, Any]:
        areas = [r.area_mm2 for r in regions if r.area_mm2 is not None]
        return {
            "key": ref.key,
            "split": ref.split,
            "defect": ref.defect,
            "sample_id": ref.sample_id,
            "label": ref.label,
            "score_rgb": f"{prediction.score_rgb:.6g}",
            "score_3d": f"{prediction.score_3d:.6g}",
            "score_fused": f"{prediction.score_fused:.6g}",
            "score_relative": f"{prediction.score_relative:.4g}",
            "image_threshold": f"{prediction.image_threshold:.6g}",
            "pixel_threshold": f"{prediction.pixel_threshold:.6g}",
            "decision": "anomalous" if prediction.is_anomalous else "normal",
            "regions": len(regions),
            "largest_region_px": max((r.area_px for r in regions), default=0),
            **model_fields(self.model_info),
            "largest_region_mm2": _mm2(max(areas)) if areas else "",
            "region_list": region_list(regions),
        }

    def close(self) -> Path:
        """Write ``regions.csv``, ``report.html`` and, last, ``scores.csv`` (its presence says
        the run finished); returns the path of ``scores.csv``."""
        folder = self._folder(self.out_dir)
        self._sort_as_planned()
        _write_csv(folder / "regions.csv", REGION_COLUMNS, self.region_rows)
        if self.report:
            write_report(folder / REPORT_NAME, self._report_data())
        return _write_csv(folder / "scores.csv", CSV_COLUMNS, self.rows)

    def _sort_as_planned(self) -> None:
        """Rows in input order (see :meth:`plan`), whatever order the samples came in."""
        if not self._order:
            return
        last = len(self._order)
        rank = {i: self._order.get(i, last) for i in self._row_ids}
        by_key = {row["key"]: rank[i] for row, i in zip(self.rows, self._row_ids, strict=True)}
        order = sorted(range(len(self.rows)), key=lambda n: rank[self._row_ids[n]])
        self.rows = [self.rows[n] for n in order]
        self.samples = [self.samples[n] for n in order]
        self._row_ids = [self._row_ids[n] for n in order]
        self.region_rows.sort(key=lambda r: by_key.get(r["key"], last))  # stable: region order
        self._labelled.sort(key=lambda s: by_key.get(s.key, last))

    @property
    def report_path(self) -> Path | None:
        path = self.out_dir / REPORT_NAME
        return path if self.report and path.exists() else None

    def _report_data(self) -> ReportData:
        evaluation, note = None, ""
        if self._labelled:
            if self.evaluation is not None and _same_samples(self.evaluation, self._labelled):
                evaluation = self.evaluation
            else:
                try:
                    evaluation = pooled_evaluation(self._labelled)
                except ValueError as exc:  # e.g. a NaN score: the report says so, files stay
                    note = f"metrics not computed: {first_line(exc)}"
        return ReportData(
            model_info=self.model_info,
            data_folder=self.data_folder,
            samples=list(self.samples),
            errors=list(self.errors),
            evaluation=evaluation,
            note=note,
        )


def pooled_evaluation(scored: Sequence[ScoredSample]) -> EvaluationReport:
    """The report's metrics: I-AUROC (with its bootstrap interval), AUPRO@0.3 and the image ROC
    of all labelled samples pooled, per modality: the ``all`` row of ``mdss evaluate``, without
    its per-defect rows and PRO curves, which would multiply the pixel work several times."""
    labels = np.array([s.label for s in scored])
    has_both = 0 < labels.sum() < len(labels)
    has_pixels = any(s.gt.any() for s in scored)
    row, curves, intervals = {}, {}, {}
    for m in MODALITIES:
        scores = np.array([s.scores[m] for s in scored])
        gts, maps = [s.gt for s in scored], [s.maps[m] for s in scored]
        row[m] = {
            "i_auroc": auroc(labels, scores) if has_both else float("nan"),
            "aupro": aupro(gts, maps) if has_pixels else float("nan"),
        }
        curves[m] = {"roc": roc_curve(labels, scores)[:2]} if has_both else {}
        if has_both:
            intervals[m] = auroc_interval(labels, scores)
    counts = {"normal": int((labels == 0).sum()), "anomalous": int((labels == 1).sum())}
    samples = [
        {"key": s.key, "defect": s.defect, "label": s.label,
         **{f"score_{k}": v for k, v in s.scores.items()}}
        for s in scored
    ]  # fmt: skip
    return EvaluationReport({"all": row}, samples, curves, counts, intervals)


def _same_samples(report: EvaluationReport, scored: Sequence[ScoredSample]) -> bool:
    """Whether ``report`` was computed on these samples with these scores (not stale)."""
    theirs = sorted((s["key"], s.get("score_fused")) for s in report.samples)
    return theirs == sorted((s.key, s.scores["fused"]) for s in scored)


def _write_csv(path: Path, columns: Sequence[str], rows: list[dict[str, Any]]) -> Path:
    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    return atomic_write(path, write)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
