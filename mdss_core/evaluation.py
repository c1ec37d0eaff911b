"""Paper-style evaluation: I-AUROC and AUPRO@0.3 for RGB, 3D and RGB+3D, per defect type.

Each defect row scores that defect's samples against all ``good`` test samples (the usual
per-defect protocol); the ``all`` row pools every test sample — the per-category number the
MDSS tables report — and ``mean`` averages the defect rows. AUPRO is the exact all-threshold
curve of :mod:`mdss_core.metrics`, on maps at each sample's original resolution. The ``all``
row's I-AUROC also gets a 95 % bootstrap interval: test sets with few normal images give
coarse, fragile image-level numbers, and the interval makes that visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mdss_core.errors import DataError
from mdss_core.io.readers import read_gt
from mdss_core.io.sample import GOOD, SampleRef
from mdss_core.metrics import aupro, auroc, auroc_interval, pro_curve, roc_curve
from mdss_core.prediction import Prediction
from mdss_core.progress import CancelToken, ProgressCallback, check_cancel, report

MODALITIES = ("rgb", "3d", "fused")
LABELS = {"rgb": "RGB", "3d": "3D", "fused": "RGB+3D"}


@dataclass
class ScoredSample:
    """One labelled sample as the metrics see it: scores and maps per modality, ground truth."""

    key: str
    defect: str
    label: int
    scores: dict[str, float]
    maps: dict[str, np.ndarray]
    gt: np.ndarray

    @classmethod
    def of(cls, ref: SampleRef, prediction: Prediction) -> ScoredSample:
        """From a prediction; the ground truth is read from ``ref`` (none: no defect pixel)."""
        gt = ground_truth(ref, prediction.shape)
        label = ref.label if ref.label >= 0 else int(gt.any())
        defect = ref.defect or ("anomalous" if label else GOOD)
        return cls(ref.key, defect, label, prediction.scores(), prediction.maps(), gt)


def ground_truth(ref: SampleRef, shape: tuple[int, int]) -> np.ndarray:
    """The sample's defect mask at its resolution; all False when it has none."""
    if ref.gt_path is None:
        return np.zeros(shape, bool)
    gt = read_gt(ref.gt_path)
    if gt.shape != shape:
        raise DataError(ref.gt_path, f"mask size {gt.shape} does not match the sample {shape}")
    return gt


@dataclass
class EvaluationReport:
    rows: dict[str, dict[str, dict[str, float]]]  # row → modality → {"i_auroc", "aupro"}
    samples: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = field(default_factory=dict)
    # Image counts of the ``all`` row and its I-AUROC 95 % bootstrap interval per modality.
    counts: dict[str, int] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, dict[str, float]]:
        return self.rows["mean"]

    def table(self) -> str:
        head = f"{'defect':<16}" + "".join(f"{LABELS[m] + ' I-AUROC':>16}" for m in MODALITIES)
        head += "".join(f"{LABELS[m] + ' AUPRO':>14}" for m in MODALITIES)
        lines = [head, "-" * len(head)]
        for name, row in self.rows.items():
            cells = "".join(f"{_fmt(row[m]['i_auroc']):>16}" for m in MODALITIES)
            cells += "".join(f"{_fmt(row[m]['aupro']):>14}" for m in MODALITIES)
            lines.append(f"{name:<16}{cells}")
        if self.intervals:
            spans = ", ".join(
                f"{LABELS[m]} {low:.3f}–{high:.3f}" for m, (low, high) in self.intervals.items()
            )
            lines.append(
                f"I-AUROC 95 % interval of 'all' (bootstrap over {self.counts['normal']} normal / "
                f"{self.counts['anomalous']} anomalous images): {spans}"
            )
        return "\n".join(lines)

    def decisions(self, threshold: float) -> dict[str, float]:
        """Image decisions on the fused score at ``threshold`` (flagged = score ≥ threshold)."""
        fused = [(s["label"], s["score_fused"]) for s in self.samples]
        return {
            "threshold": float(threshold),
            "defective": sum(1 for label, _ in fused if label == 1),
            "defective_flagged": sum(1 for label, v in fused if label == 1 and v >= threshold),
            "normal": sum(1 for label, _ in fused if label == 0),
            "normal_flagged": sum(1 for label, v in fused if label == 0 and v >= threshold),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "counts": self.counts,
            "i_auroc_interval_95": {m: list(span) for m, span in self.intervals.items()},
            "samples": self.samples,
        }


def evaluate_predictions(
    pairs: Iterable[tuple[SampleRef, Prediction]],
    total: int,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
    stage: str = "metrics",
) -> EvaluationReport | None:
    """The table of the labelled samples among ``pairs`` (``None`` when there are none).

    ``pairs`` may be a generator that predicts as it goes; ``total`` is its length, for
    progress reports. Samples with neither a label nor a mask are left out.
    """
    scored = []
    for i, (ref, prediction) in enumerate(pairs):
        check_cancel(cancel, "evaluation")
        if ref.label >= 0 or ref.gt_path is not None:
            scored.append(ScoredSample.of(ref, prediction))
        report(progress, stage, i + 1, total, ref.key)
    return summarize(scored) if scored else None


def summarize(scored: list[ScoredSample]) -> EvaluationReport:
    """Build the table from scored samples (split out so it is testable without a model)."""
    good = [s for s in scored if s.label == 0]
    defects = sorted({s.defect for s in scored if s.label == 1})
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for defect in defects:
        rows[defect] = _row(good + [s for s in scored if s.defect == defect and s.label == 1])
    if defects:
        rows["mean"] = {
            m: {k: _nanmean([rows[d][m][k] for d in defects]) for k in ("i_auroc", "aupro")}
            for m in MODALITIES
        }
    rows["all"] = _row(scored)
    curves = {}
    labels = np.array([s.label for s in scored])
    counts = {"normal": int((labels == 0).sum()), "anomalous": int((labels == 1).sum())}
    has_both = counts["normal"] > 0 and counts["anomalous"] > 0
    intervals = {}
    for m in MODALITIES:
        entry = {}
        if has_both:
            scores = np.array([s.scores[m] for s in scored])
            fpr, tpr, _ = roc_curve(labels, scores)
            entry["roc"] = (fpr, tpr)
            intervals[m] = auroc_interval(labels, scores)
        if any(s.gt.any() for s in scored):
            fpr, pro, _ = pro_curve([s.gt for s in scored], [s.maps[m] for s in scored])
            entry["pro"] = (fpr, pro)
        curves[m] = entry
    samples = [
        {
            "key": s.key,
            "defect": s.defect,
            "label": s.label,
            **{f"score_{k}": v for k, v in s.scores.items()},
        }
        for s in scored
    ]
    return EvaluationReport(rows, samples, curves, counts, intervals)


def _row(samples: list[ScoredSample]) -> dict[str, dict[str, float]]:
    labels = np.array([s.label for s in samples])
    has_both = 0 < labels.sum() < len(labels)
    has_pixels = any(s.gt.any() for s in samples)
    row = {}
    for m in MODALITIES:
        scores = np.array([s.scores[m] for s in samples])
        row[m] = {
            "i_auroc": auroc(labels, scores) if has_both else float("nan"),
            "aupro": aupro([s.gt for s in samples], [s.maps[m] for s in samples])
            if has_pixels
            else float("nan"),
        }
    return row


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _fmt(value: float) -> str:
    return "n/a" if not np.isfinite(value) else f"{value:.3f}"
