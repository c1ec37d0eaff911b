"""Exported results users keep: annotated overlays in the inspector's colours, scores.csv with the
model and regions, regions.csv, and report.html (summary, ROC with the operating point, links)."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from mdss_core.export import CSV_COLUMNS, ResultWriter, region_list
from mdss_core.io.sample import SampleRef
from mdss_core.io.writers import write_png, write_tiff
from mdss_core.overlay_render import (
    ANOMALOUS_COLOUR,
    GT_COLOUR,
    NORMAL_COLOUR,
    PREDICTION_COLOUR,
    OverlayCaption,
    blend_scores,
    render_overlay,
    score_colours,
)
from mdss_core.prediction import Prediction
from mdss_core.regions import find_regions, pixel_area_mm2, with_thresholds
from mdss_core.report_html import REPORT_NAME

SIZE = 48
PIXEL, IMAGE = 0.5, 0.6
INFO = {
    "name": "gland-v2",
    "preset": "tiny",
    "fusion": "paper",
    "teacher": {"kind": "backbone"},
    "teacher_text": "backbone: test",
    "training": {"category": "cable_gland", "n_train": 12},
}
# What scripts read before the report columns were appended: these must keep their places.
OLD_COLUMNS = (
    "key", "split", "defect", "sample_id", "label", "score_rgb", "score_3d", "score_fused",
    "score_relative", "image_threshold", "pixel_threshold", "decision", "regions",
    "largest_region_px",
)  # fmt: skip


def cloud() -> np.ndarray:
    """A flat cloud with 1 mm between neighbours: every pixel covers 1 mm²."""
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return np.dstack([cols * 1e-3, rows * 1e-3, np.full_like(rows, 0.6)])


def make_sample(root: Path, defect: str, sample_id: str, blobs: list[tuple], score: float):
    """Files of one sample and a hand-made prediction: each blob (r0, r1, c0, c1, value) is a
    square of the fused map and, for defects, of the ground truth."""
    folder = root / "test" / defect
    for sub in ("rgb", "xyz", "gt"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    rgb = np.full((SIZE, SIZE, 3), 90, np.uint8)
    gt = np.zeros((SIZE, SIZE), bool)
    fused = np.full((SIZE, SIZE), 0.05, np.float32)
    for r0, r1, c0, c1, value in blobs:
        fused[r0:r1, c0:c1] = value
        gt[r0:r1, c0:c1] = defect != "good"
    write_png(folder / "rgb" / f"{sample_id}.png", rgb)
    write_tiff(folder / "xyz" / f"{sample_id}.tiff", cloud())
    write_png(folder / "gt" / f"{sample_id}.png", gt.astype(np.uint8) * 255)
    ref = SampleRef(
        sample_id,
        folder / "rgb" / f"{sample_id}.png",
        folder / "xyz" / f"{sample_id}.tiff",
        folder / "gt" / f"{sample_id}.png",
        split="test",
        defect=defect,
    )
    mask = np.ones((SIZE, SIZE), bool)
    regions = find_regions(fused, fused, fused * 0.5, PIXEL, pixel_area_mm2(cloud(), mask))
    zeros = np.zeros_like(fused)
    prediction = Prediction(
        ref.key, fused, fused, fused * 0.5, zeros, mask, fused, score, score, score, IMAGE, regions
    )
    return ref, prediction


@pytest.fixture
def scored(tmp_path) -> list[tuple[SampleRef, Prediction]]:
    root = tmp_path / "data"
    return [
        make_sample(root, "good", "000", [], 0.2),
        make_sample(root, "good", "001", [(40, 43, 40, 43, 0.55)], 0.4),  # normal, one region
        make_sample(root, "hole", "000", [(5, 12, 6, 14, 1.0)], 0.9),
        make_sample(root, "hole", "001", [(5, 10, 5, 10, 0.9), (30, 34, 20, 26, 0.8)], 0.7),
        make_sample(root, "cut", "000", [], 0.3),  # a missed defect: below the threshold
    ]


def export(items, out: Path, **kwargs) -> Path:
    writer = ResultWriter(out, ("fused",), model_info=INFO, data_folder="data", **kwargs)
    for ref, prediction in items:
        writer.add(ref, prediction)
    return writer.close()


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- overlays
def near(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 12) -> int:
    """Pixels within ``tolerance`` of ``colour`` in every channel."""
    return int(np.all(np.abs(image.astype(int) - colour) <= tolerance, axis=-1).sum())


def caption(anomalous: bool = True) -> OverlayCaption:
    return OverlayCaption("test/hole/000", "colours: fused score", 0.9, 1.5, anomalous, "m", 0.5)


def test_overlay_has_bands_legend_decision_and_both_outlines(scored):
    ref, prediction = scored[2]
    rgb = np.full((SIZE, SIZE, 3), 90, np.uint8)
    gt = np.zeros((SIZE, SIZE), bool)
    gt[20:30, 20:30] = True  # apart from the prediction, so each outline shows on its own
    image = render_overlay(rgb, prediction.fused_map, caption(), gt)
    width = image.shape[1]
    body = width  # the square image, enlarged to the canvas width
    assert width >= 640 and image.shape[0] > body  # header and legend bands around the image
    header_h = next(y for y in range(image.shape[0]) if near(image[y], (90, 90, 90), 40) > 100)
    header, below = image[:header_h], image[header_h + body :]
    assert near(header, ANOMALOUS_COLOUR, 30) > 20 and near(header, NORMAL_COLOUR, 30) == 0
    shown = image[header_h : header_h + body]
    assert near(shown, GT_COLOUR, 30) > 50 and near(shown, PREDICTION_COLOUR, 30) > 50
    # The legend: a colour bar of the score colour map, the threshold mark, both outline keys.
    bar_row = next(y for y in range(below.shape[0]) if near(below[y], score_colours()[255], 8))
    assert near(below[bar_row : bar_row + 1], score_colours()[0], 8) > 0
    assert near(below, PREDICTION_COLOUR, 20) > 20 and near(below, GT_COLOUR, 20) > 20

    plain = render_overlay(rgb, prediction.fused_map, caption(anomalous=False))
    assert near(plain, GT_COLOUR, 30) == 0  # no ground truth: no green outline, no key
    assert near(plain[:header_h], NORMAL_COLOUR, 30) > 20


def test_overlay_colours_are_the_shared_colour_map_with_the_fade():
    base = np.zeros((4, 4, 3), np.uint8)
    scores = np.array([[0.0, 1.0, 2.0, 4.0]] * 4, np.float32)  # ceiling 2: 0, mid, top, above
    tinted = blend_scores(base, scores, ceiling=2.0, opacity=1.0)
    table = score_colours()
    assert tinted[0, 0].tolist() == [0, 0, 0]  # the lowest scores fade out completely
    assert tinted[0, 1].tolist() == table[127].tolist()
    assert tinted[0, 2].tolist() == tinted[0, 3].tolist() == table[255].tolist()


# ----------------------------------------------------------------------------- CSVs
def test_scores_and_regions_csv_agree_with_decisions_and_areas(scored, tmp_path):
    path = export(scored, tmp_path / "out")
    rows = read_csv(path)
    with path.open() as handle:
        header = handle.readline().strip().split(",")
    assert tuple(header[: len(OLD_COLUMNS)]) == OLD_COLUMNS and tuple(header) == CSV_COLUMNS
    regions = read_csv(tmp_path / "out" / "regions.csv")
    for row, (ref, prediction) in zip(rows, scored, strict=True):
        assert row["key"] == ref.key
        assert (row["decision"] == "anomalous") == (prediction.score_fused >= IMAGE)
        assert row["model_name"] == "gland-v2" and row["model_category"] == "cable_gland"
        assert row["model_preset"] == "tiny" and row["model_teacher"] == "backbone: test"
        mine = [r for r in regions if r["key"] == ref.key]
        # Decision and regions agree: none for a normal part, at least one for a flagged one.
        expected = len(prediction.regions) or 1 if row["decision"] == "anomalous" else 0
        assert int(row["regions"]) == len(mine) == expected
        listed = [entry.split() for entry in row["region_list"].split(";") if entry]
        assert len(listed) == len(mine)
        for entry, region in zip(listed, mine, strict=True):
            assert entry == [region[k] for k in ("x0", "y0", "x1", "y1", "area_px", "area_mm2")]
            # 1 mm² per pixel in this cloud; the box holds the region
            assert float(region["area_mm2"]) == pytest.approx(int(region["area_px"]), rel=1e-3)
            box = (int(region["x1"]) - int(region["x0"])) * (int(region["y1"]) - int(region["y0"]))
            assert box >= int(region["area_px"])
    hole = next(r for r in regions if r["key"] == "test/hole/000")
    assert (hole["x0"], hole["y0"], hole["x1"], hole["y1"]) == ("6", "5", "14", "12")
    assert hole["area_px"] == "56" and float(hole["peak_fused"]) == 1.0
    assert [r["region"] for r in regions if r["key"] == "test/hole/001"] == ["1", "2"]
    assert {r["kind"] for r in regions} == {"defect"}
    assert not [r for r in regions if r["key"] == "test/good/001"]  # a normal part: no defect


def test_a_part_flagged_by_its_image_score_alone_reports_its_peak_region(scored, tmp_path):
    from mdss_core.regions import with_thresholds

    ref, prediction = scored[3]  # hole/001: fused peaks 0.9 and 0.8, image score 0.7
    flagged = with_thresholds(prediction, pixel_threshold=0.95, image_threshold=0.6)
    assert flagged.is_anomalous and len(flagged.regions) == 0
    export([(ref, flagged)], tmp_path / "out")
    (row,) = read_csv(tmp_path / "out" / "scores.csv")
    (region,) = read_csv(tmp_path / "out" / "regions.csv")
    assert row["decision"] == "anomalous" and row["regions"] == "1"
    assert row["pixel_threshold"] == "0.95"
    assert region["kind"] == "peak" and float(region["peak_fused"]) == pytest.approx(0.9)
    assert (region["x0"], region["y0"], region["x1"], region["y1"]) == ("5", "5", "10", "10")


def test_regions_at_another_threshold_are_recounted_with_areas(scored, tmp_path):
    # A pixel threshold of 0.85 keeps only the 1.0 and 0.9 blobs; with_thresholds recomputes
    # the regions without areas, and the export reads the cloud again for them.
    judged = [(ref, with_thresholds(p, 0.85, 0.35)) for ref, p in scored]
    rows = read_csv(export(judged, tmp_path / "out"))
    regions = read_csv(tmp_path / "out" / "regions.csv")
    counts = {row["key"]: int(row["regions"]) for row in rows}
    assert counts == {
        "test/good/000": 0, "test/good/001": 1, "test/hole/000": 1, "test/hole/001": 1,
        "test/cut/000": 0,
    }  # fmt: skip
    assert all(row["pixel_threshold"] == "0.85" for row in rows)
    # good/001 (0.4) is now flagged although no pixel reaches 0.85: it reports its peak region.
    assert [row["decision"] for row in rows] == ["normal"] + ["anomalous"] * 3 + ["normal"]
    assert [r["kind"] for r in regions] == ["peak", "defect", "defect"]
    assert len(regions) == 3 and all(float(r["area_mm2"]) > 0 for r in regions)
    assert rows[3]["largest_region_mm2"] == regions[2]["area_mm2"] == "25"


def test_region_list_is_empty_without_regions(scored):
    assert region_list(scored[0][1].regions) == ""


# ----------------------------------------------------------------------------- report
class Links(HTMLParser):
    """Every href/src of a page, and whether its tags balance (a cheap validity check)."""

    VOID = {"meta", "img", "br", "rect", "polyline", "line", "circle", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.open: list[str] = []
        self.unbalanced: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [v for k, v in attrs if k in ("href", "src") and v]
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if not self.open or self.open.pop() != tag:
            self.unbalanced.append(tag)


def test_report_has_the_summary_the_roc_with_its_operating_point_and_working_links(
    scored, tmp_path
):
    out = tmp_path / "out"
    export(scored, out)
    text = (out / REPORT_NAME).read_text(encoding="utf-8")
    parser = Links()
    parser.feed(text)
    assert parser.unbalanced == [] and parser.open == []
    assert (
        "<script" not in text
        and "<link" not in text
        and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )  # self-contained
    for row in (
        "gland-v2",
        "cable_gland",
        "Samples scored</th><td>5",
        "Flagged anomalous</th><td>2",
    ):
        assert row in text
    # 3 defective (2 flagged), 2 normal (none flagged): TPR 2/3, FPR 0 at the image threshold.
    assert "TPR 0.667 (2 of 3 defective flagged), FPR 0.000 (0 of 2 normal flagged)" in text
    svg = text[text.index("<svg") : text.index("</svg>")]
    assert 'class="roc-fused"' in svg
    cx, cy = (
        float(v) for v in re.search(r'operating-point" cx="([\d.]+)" cy="([\d.]+)"', svg).groups()
    )
    fused = re.search(r'roc-fused" points="([^"]+)"', svg).group(1).split()
    assert f"{cx:.1f},{cy:.1f}" in fused  # the point is a vertex of the drawn fused curve
    pngs = [link for link in parser.links if link.endswith(".png")]
    assert len(pngs) >= 2 and all((out / unquote(link)).is_file() for link in parser.links)
    # Flagged samples sorted by score: hole/000 (0.9) before hole/001 (0.7).
    assert text.index("test/hole/000</b>") < text.index("test/hole/001</b>")
    assert "1 region(s), largest 56 mm²" in text  # hole/000: 7 × 8 pixels of 1 mm²


def test_report_escapes_names_and_lists_errors(tmp_path):
    root = tmp_path / "data"
    odd = make_sample(root, "hole", 'a&b<"x">', [(5, 12, 6, 14, 1.0)], 0.9)
    info = {**INFO, "name": "<script>alert(1)</script>"}
    writer = ResultWriter(tmp_path / "out", ("fused",), model_info=info, data_folder="d<&>")
    writer.add(*odd)
    writer.note_error("/data/x.tiff: not a <tiff>")
    writer.close()
    text = (tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "d&lt;&amp;&gt;" in text and "not a &lt;tiff&gt;" in text
    assert "test/hole/a&amp;b&lt;&quot;x&quot;&gt;" in text
    parser = Links()
    parser.feed(text)
    assert parser.links and all((tmp_path / "out" / unquote(p)).is_file() for p in parser.links)
    assert "Not scored (1)" in text


def test_unlabelled_samples_give_a_report_without_metrics(scored, tmp_path):
    plain = [(SampleRef(r.sample_id + r.defect, r.rgb_path, r.xyz_path), p) for r, p in scored[:2]]
    export(plain, tmp_path / "out")
    text = (tmp_path / "out" / REPORT_NAME).read_text(encoding="utf-8")
    assert "no labelled sample" in text and "<svg" not in text


# ----------------------------------------------------------------------------- metrics
def test_pooled_metrics_are_the_all_row_of_the_full_evaluation(scored, tmp_path):
    from mdss_core.evaluation import summarize
    from mdss_core.export import pooled_evaluation

    writer = ResultWriter(tmp_path / "out", (), model_info=INFO)
    for ref, prediction in scored:
        writer.add(ref, prediction)
    full, pooled = summarize(writer._labelled), pooled_evaluation(writer._labelled)
    assert list(pooled.rows) == ["all"]
    for m in ("rgb", "3d", "fused"):
        assert pooled.rows["all"][m] == pytest.approx(full.rows["all"][m])
        assert pooled.intervals[m] == full.intervals[m]
        for got, expected in zip(pooled.curves[m]["roc"], full.curves[m]["roc"], strict=True):
            assert np.array_equal(got, expected)


def test_metrics_given_by_the_inspector_are_used_only_when_they_match(scored, tmp_path):
    from mdss_core.evaluation import summarize

    writer = ResultWriter(tmp_path / "probe", ())
    for ref, prediction in scored:
        writer.add(ref, prediction)
    given = summarize(writer._labelled)
    given.rows["marker-row"] = given.rows["all"]  # tells the given table from a computed one
    export(scored, tmp_path / "same", evaluation=given)
    assert "marker-row" in (tmp_path / "same" / REPORT_NAME).read_text(encoding="utf-8")
    given.samples[0]["score_fused"] += 1.0  # stale: computed before a rescoring
    export(scored, tmp_path / "stale", evaluation=given)
    assert "marker-row" not in (tmp_path / "stale" / REPORT_NAME).read_text(encoding="utf-8")
