"""``report.html``: one self-contained inspection report per scored folder.

What was scored with which model, how many samples were flagged, the thresholds, and, when the
samples are labelled, the I-AUROC / AUPRO table and the image ROC curve (inline SVG) with the
operating point of the image threshold marked. The flagged samples follow, highest score first,
with their overlays (relative links to the PNGs written beside the report). No external CSS,
script or font; every name from the data is HTML-escaped; no time stamp, so the same results
give the same file.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from mdss_core.atomic import atomic_write
from mdss_core.evaluation import LABELS, MODALITIES, EvaluationReport
from mdss_core.io.sample import SampleRef
from mdss_core.prediction import Prediction, RegionSet

REPORT_NAME = "report.html"
# The inspector's metric-curve hues (pink, blue, orange), darkened for a white page.
CURVE_COLOURS = {"rgb": "#d94fb8", "3d": "#3d8fe0", "fused": "#e8890c"}
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#1d2026;max-width:1100px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #d0d4da;padding:3px 8px;
text-align:left}th{background:#f0f2f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.anomalous{color:#c92a2a;font-weight:600}.normal{color:#2b8a3e;font-weight:600}
.muted{color:#6b7380;font-size:12px}.cards{display:flex;flex-wrap:wrap;gap:14px}
.card{border:1px solid #d0d4da;padding:8px;width:320px;font-size:13px}
.card img{width:100%;height:auto;display:block;margin-bottom:6px}
"""


@dataclass(frozen=True)
class ReportSample:
    """One scored sample as the report lists it."""

    key: str
    label: int  # 0 normal, 1 anomalous, -1 unknown
    score: float  # fused image score
    score_relative: float
    anomalous: bool
    regions: int
    overlays: dict[str, str]  # map name → PNG path relative to the report
    image_threshold: float
    pixel_threshold: float
    largest_mm2: float | None = None  # the largest region's area, when the cloud gave one

    @classmethod
    def of(
        cls, ref: SampleRef, prediction: Prediction, regions: RegionSet, overlays: dict[str, str]
    ) -> ReportSample:
        areas = [r.area_mm2 for r in regions if r.area_mm2 is not None]
        return cls(
            ref.key,
            ref.label,
            prediction.score_fused,
            prediction.score_relative,
            prediction.is_anomalous,
            len(regions),
            dict(overlays),
            prediction.image_threshold,
            regions.threshold,
            max(areas) if areas else None,
        )


@dataclass
class ReportData:
    model_info: dict[str, Any]
    data_folder: str
    samples: list[ReportSample]
    errors: list[str] = field(default_factory=list)
    evaluation: EvaluationReport | None = None
    note: str = ""  # why metrics are missing, when they are


def write_report(path: str | Path, data: ReportData) -> Path:
    """Render and write the report atomically."""
    text = render_report(data)
    return atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def render_report(data: ReportData) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mdss report · {_e(data.model_info.get('name') or 'model')}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>mdss inspection report</h1>",
        _summary(data),
        _metrics(data),
        _flagged(data.samples),
        _all_samples(data.samples),
        _errors(data.errors),
        '<p class="muted">Decision: anomalous when the fused image score reaches the image '
        "threshold. Regions of a flagged sample: connected areas of the fused map at or above "
        "the pixel threshold, or, when none reaches it, the area around its highest score; a "
        "sample judged normal lists none.</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float, digits: int = 4) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def _metric(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.3f}"


def _values(numbers: Sequence[float]) -> str:
    """One threshold, or the distinct ones when samples were judged with several."""
    distinct = sorted({round(float(v), 12) for v in numbers})
    return ", ".join(_num(v, 6) for v in distinct) or "n/a"


def _summary(data: ReportData) -> str:
    info, samples = data.model_info, data.samples
    training = info.get("training") or {}
    teacher = info.get("teacher") or {}
    flagged = sum(s.anomalous for s in samples)
    rows = [
        ("Model", info.get("name") or "?"),
        ("Category", training.get("category") or "?"),
        ("Preset / fusion", f"{info.get('preset') or '?'} / {info.get('fusion') or 'paper'}"),
        ("Teacher", info.get("teacher_text") or teacher.get("kind") or "?"),
        ("Trained on", f"{training.get('n_train', '?')} samples"),
        ("Data folder", data.data_folder or "?"),
        ("Samples scored", len(samples)),
        ("Flagged anomalous", flagged),
        ("Not scored (errors)", len(data.errors)),
        ("Image threshold", _values([s.image_threshold for s in samples])),
        ("Pixel threshold", _values([s.pixel_threshold for s in samples])),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<h2>Summary</h2><table>{body}</table>"


def _metrics(data: ReportData) -> str:
    report = data.evaluation
    if report is None:
        why = data.note or "no labelled sample (no defect folder or ground truth): no metrics"
        return f'<h2>Metrics</h2><p class="muted">{_e(why)}</p>'
    head = "<tr><th>defect</th>" + "".join(
        f"<th>{_e(LABELS[m])} I-AUROC</th><th>{_e(LABELS[m])} AUPRO@0.3</th>" for m in MODALITIES
    )
    rows = [head + "</tr>"]
    for name, row in report.rows.items():
        cells = "".join(
            f'<td class="n">{_metric(row[m]["i_auroc"])}</td>'
            f'<td class="n">{_metric(row[m]["aupro"])}</td>'
            for m in MODALITIES
        )
        rows.append(f"<tr><td>{_e(name)}</td>{cells}</tr>")
    parts = ["<h2>Metrics (labelled samples)</h2>", f"<table>{''.join(rows)}</table>"]
    if list(report.rows) == ["all"]:
        parts.append('<p class="muted">"all": every labelled sample pooled; '
                     "<code>mdss evaluate</code> gives the table per defect type.</p>")  # fmt: skip
    if report.intervals:
        spans = ", ".join(f"{LABELS[m]} {a:.3f}–{b:.3f}" for m, (a, b) in report.intervals.items())
        parts.append(f'<p class="muted">I-AUROC 95 % bootstrap interval of "all": {_e(spans)}</p>')
    threshold = data.samples[0].image_threshold if data.samples else float("nan")
    parts.append(_roc_section(report, threshold))
    return "\n".join(parts)


def operating_point(report: EvaluationReport, threshold: float) -> tuple[float, float, str]:
    """``(fpr, tpr, text)`` of the fused image decision at ``threshold`` on the labelled
    samples: where the stored threshold sits on the ROC curve."""
    d = report.decisions(threshold)
    tpr = d["defective_flagged"] / d["defective"] if d["defective"] else float("nan")
    fpr = d["normal_flagged"] / d["normal"] if d["normal"] else float("nan")
    text = (
        f"at the image threshold {threshold:.4g}: TPR {tpr:.3f} ({d['defective_flagged']} of "
        f"{d['defective']} defective flagged), FPR {fpr:.3f} ({d['normal_flagged']} of "
        f"{d['normal']} normal flagged)"
    )
    return fpr, tpr, text


def _roc_section(report: EvaluationReport, threshold: float) -> str:
    if "roc" not in report.curves.get("fused", {}):
        return '<p class="muted">ROC curve: needs both normal and defective labelled samples.</p>'
    fpr, tpr, text = operating_point(report, threshold)
    svg = roc_svg({m: report.curves[m]["roc"] for m in MODALITIES}, (fpr, tpr))
    return f"<h2>Image ROC</h2>{svg}<p>Operating point {_e(text)}</p>"


class _RocFrame:
    """Maps (FPR, TPR) to SVG coordinates of a square plot with room for labels and a legend."""

    def __init__(self, size: int) -> None:
        self.left, self.top, self.side = 44, 20, size - 64

    def xy(self, fpr: float, tpr: float) -> tuple[float, float]:
        return self.left + fpr * self.side, self.top + (1 - tpr) * self.side

    def points(self, fprs: Sequence[float], tprs: Sequence[float]) -> str:
        pairs = zip(fprs, tprs, strict=True)
        return " ".join("{:.1f},{:.1f}".format(*self.xy(f, t)) for f, t in pairs)

    def legend(self, row: int) -> tuple[float, float]:
        return self.left + self.side + 12, self.top + 14 + 16 * row


def roc_svg(
    curves: dict[str, tuple[np.ndarray, np.ndarray]],
    point: tuple[float, float] | None = None,
    size: int = 360,
) -> str:
    """ROC curves (FPR → x, TPR → y) as an inline SVG; ``point`` = (fpr, tpr) is circled."""
    frame = _RocFrame(size)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{size + 150}" height="{size}" '
        'role="img" aria-label="ROC curve" font-family="sans-serif" font-size="11">',
        *_roc_axes(frame),
    ]
    for row, (name, (fprs, tprs)) in enumerate(curves.items()):
        colour, width = CURVE_COLOURS.get(name, "#333"), 2.4 if name == "fused" else 1.4
        out.append(
            f'<polyline class="roc-{_e(name)}" points="{frame.points(fprs, tprs)}" fill="none" '
            f'stroke="{colour}" stroke-width="{width}"/>'
        )
        x, y = frame.legend(row)
        label = _e(LABELS.get(name, name))
        out.append(
            f'<line x1="{x}" y1="{y - 4}" x2="{x + 20}" y2="{y - 4}" stroke="{colour}" '
            f'stroke-width="{width}"/><text x="{x + 26}" y="{y}">{label}</text>'
        )
    if point is not None and all(math.isfinite(v) for v in point):
        cx, cy = frame.xy(*point)
        x, y = frame.legend(len(curves))
        out.append(
            f'<circle class="operating-point" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" '
            f'stroke="#c92a2a" stroke-width="2.2"/><circle cx="{x + 10}" cy="{y - 4}" r="4" '
            f'fill="none" stroke="#c92a2a" stroke-width="2"/>'
            f'<text x="{x + 26}" y="{y}">image threshold</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _roc_axes(frame: _RocFrame) -> list[str]:
    """Plot box, grid, tick labels, axis names and the chance diagonal."""
    left, top, side = frame.left, frame.top, frame.side
    bottom = top + side
    out = [f'<rect x="{left}" y="{top}" width="{side}" height="{side}" fill="#fff" '
           'stroke="#9aa3ad"/>']  # fmt: skip
    for step in (0.25, 0.5, 0.75):
        out.append(f'<polyline points="{frame.points([step, step], [0, 1])}" stroke="#e3e6ea"/>')
        out.append(f'<polyline points="{frame.points([0, 1], [step, step])}" stroke="#e3e6ea"/>')
    for step in (0.0, 0.5, 1.0):
        x, y = frame.xy(step, step)
        out.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{step:g}</text>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{step:g}</text>')
    middle = top + side / 2
    out += [
        f'<text x="{left + side / 2}" y="{bottom + 30}" text-anchor="middle">FPR</text>',
        f'<text x="12" y="{middle}" transform="rotate(-90 12 {middle})" '
        'text-anchor="middle">TPR</text>',
        f'<polyline points="{frame.points([0, 1], [0, 1])}" stroke="#b8bec6" '
        'stroke-dasharray="4 3" fill="none"/>',
    ]
    return out


def _flagged(samples: list[ReportSample]) -> str:
    flagged = sorted((s for s in samples if s.anomalous), key=lambda s: -_sortable(s.score))
    if not flagged:
        return '<h2>Flagged samples</h2><p class="muted">No sample was flagged anomalous.</p>'
    cards = [_card(s) for s in flagged]
    return f'<h2>Flagged samples ({len(flagged)})</h2><div class="cards">{"".join(cards)}</div>'


def _card(sample: ReportSample) -> str:
    main = sample.overlays.get("fused") or next(iter(sample.overlays.values()), None)
    lines = [
        f"<b>{_e(sample.key)}</b>",
        f'<span class="anomalous">anomalous</span> · score {_num(sample.score)} '
        f"({_num(sample.score_relative, 3)} × threshold) · {sample.regions} region(s)"
        + (f", largest {sample.largest_mm2:.3g} mm²" if sample.largest_mm2 is not None else ""),
    ]
    if sample.label >= 0:
        lines.append(_label_text(sample.label))
    if sample.overlays:
        links = (f'<a href="{_href(p)}">{_e(name)}</a>' for name, p in sample.overlays.items())
        lines.append(f'<span class="muted">overlays: {" ".join(links)}</span>')
    image = ""
    if main:
        image = f'<a href="{_href(main)}"><img src="{_href(main)}" alt="{_e(sample.key)}"></a>'
    return f'<div class="card">{image}{"<br>".join(lines)}</div>'


def _all_samples(samples: list[ReportSample]) -> str:
    if not samples:
        return ""
    head = "<tr><th>sample</th><th>label</th><th>score</th><th>× threshold</th>"
    head += "<th>decision</th><th>regions</th></tr>"
    rows = [head]
    for s in sorted(samples, key=lambda s: -_sortable(s.score)):
        decision = "anomalous" if s.anomalous else "normal"
        rows.append(
            f"<tr><td>{_e(s.key)}</td><td>{_e(_label_text(s.label))}</td>"
            f'<td class="n">{_num(s.score)}</td><td class="n">{_num(s.score_relative, 3)}</td>'
            f'<td class="{decision}">{decision}</td><td class="n">{s.regions}</td></tr>'
        )
    return (
        f"<h2>All samples</h2><details><summary>{len(samples)} samples by score</summary>"
        f"<table>{''.join(rows)}</table></details>"
    )


def _errors(errors: list[str]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li>{_e(e)}</li>" for e in errors)
    return f"<h2>Not scored ({len(errors)})</h2><ul>{items}</ul>"


def _label_text(label: int) -> str:
    return {0: "labelled normal", 1: "labelled defective"}.get(label, "unlabelled")


def _href(path: str) -> str:
    return _e(quote(path))


def _sortable(value: float) -> float:
    return value if math.isfinite(value) else -math.inf
