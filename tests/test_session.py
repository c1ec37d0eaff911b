"""The inspector's session without Qt: thresholds in one place, regions derived off the caller's
thread (newest request wins), clicks answered against the regions on screen, O(1) score table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mdss_app.session import InspectorSession, ScoreTable
from mdss_core.api import DatasetIndex, Prediction, Sample, SampleRef, pixel_area_mm2, regions_at
from mdss_core.regions import find_regions

SIZE = 40


class Deferred:
    """A runner that keeps jobs until the test runs them: what a background thread does."""

    def __init__(self) -> None:
        self.jobs: list = []

    def __call__(self, job, done) -> None:
        self.jobs.append((job, done))

    def run_next(self) -> None:
        job, done = self.jobs.pop(0)
        done(job())


class Model:
    name, device = "fake", "cpu"
    image_threshold, pixel_threshold = 0.5, 0.5


def sample(key: str) -> Sample:
    ref = SampleRef(key, Path(f"{key}.png"), Path(f"{key}.tiff"), split="test", defect="hole")
    rows, cols = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    xyz = np.dstack([cols * 1e-3, rows * 1e-3, np.full_like(rows, 0.6)])
    return Sample(ref, np.zeros((SIZE, SIZE, 3), np.uint8), xyz, np.zeros((SIZE, SIZE), bool))


def prediction(key: str) -> Prediction:
    fused = np.zeros((SIZE, SIZE), np.float32)
    fused[5:10, 5:10] = 1.0  # a strong blob
    fused[20:30, 20:30] = 0.3  # a faint one: a region only below 0.3
    zeros = np.zeros_like(fused)
    regions = find_regions(fused, fused, zeros, Model.pixel_threshold)
    return Prediction(
        key, zeros, fused, zeros, zeros, np.ones((SIZE, SIZE), bool), fused,
        1.0, 1.0, 0.9, Model.image_threshold, regions,
    )  # fmt: skip


@pytest.fixture
def shown() -> tuple[InspectorSession, Deferred, list]:
    """A session showing a scored sample, with a deferred runner and a log of region events."""
    runner = Deferred()
    session = InspectorSession(runner)
    first = sample("a")
    session.set_dataset(DatasetIndex(Path("."), [first.ref]))
    session.set_model(Model())
    session.add_scored(first.ref, prediction("test/hole/a"))
    session.select(first.ref)
    session.show_sample(first)
    seen: list = []
    session.events.regions.connect(lambda view: seen.append(view.regions.threshold))
    return session, runner, seen


def test_the_model_threshold_uses_the_prediction_own_regions(shown) -> None:
    session, runner, _ = shown
    assert runner.jobs == [] and session.view.regions is session.view.prediction.regions
    assert session.thresholds.pixel == session.thresholds.model_pixel == 0.5


def test_only_the_newest_threshold_is_derived_and_shown(shown) -> None:
    session, runner, seen = shown
    session.set_pixel_threshold(0.4)
    session.set_pixel_threshold(0.2)  # while 0.4 runs: coalesced, started when it ends
    session.set_pixel_threshold(0.25)
    assert len(runner.jobs) == 1
    runner.run_next()  # 0.4 arrives stale: dropped, the newest request starts
    assert seen == [] and len(runner.jobs) == 1
    runner.run_next()
    assert seen == [0.25] and len(session.view.regions) == 2
    assert session.view.prediction.pixel_threshold == 0.5  # the prediction never changes
    session.reset_pixel_threshold()
    assert runner.jobs == [] and seen == [0.25, 0.5]


def test_a_click_waits_for_the_regions_it_is_made_on(shown) -> None:
    session, runner, _ = shown
    selections = []
    session.events.selection.connect(selections.append)
    session.set_pixel_threshold(0.2)
    assert session.inspect_pixel(25, 25) is None  # regions at 0.2 not there yet
    runner.run_next()
    (selection,) = selections
    assert selection.region is not None and selection.region.area_px == 100
    assert selection.mask.sum() == 100
    assert selection.xyz_mm == pytest.approx((24.5, 24.5, 600.0))
    outside = session.inspect_pixel(0, 0)  # regions current: answered at once
    assert isinstance(outside, dict) and outside["fused"] == 0.0
    assert selections[-1].region is None and selections[-1].mask is None


def test_regions_match_a_direct_computation(shown) -> None:
    session, runner, _ = shown
    session.set_pixel_threshold(0.25)
    runner.run_next()
    view = session.view
    expected = regions_at(view.prediction, 0.25, pixel_area_mm2(view.sample.xyz))
    assert [r.area_mm2 for r in view.regions] == [r.area_mm2 for r in expected]
    np.testing.assert_array_equal(view.regions.labels, expected.labels)


def test_image_threshold_is_the_one_decision_rule(shown) -> None:
    session, _, _ = shown
    decided = []
    session.events.thresholds.connect(lambda new, _old: decided.append(new.image))
    p = session.view.prediction
    assert session.is_flagged(p)  # 0.9 ≥ 0.5
    session.set_image_threshold(0.95)
    assert not session.is_flagged(p) and p.image_threshold == 0.5 and decided == [0.95]


def test_score_table_grows_in_place_and_clears() -> None:
    table = ScoreTable()
    for i in range(200):
        table.add(float(i), i % 2)
    assert len(table) == 200 and table.scores[-1] == 199.0 and table.labels.sum() == 100
    table.clear()
    assert len(table) == 0 and table.scores.size == 0


def test_a_new_sample_clears_the_selection_and_rescoring_the_view(shown) -> None:
    session, _, _ = shown
    session.inspect_pixel(7, 7)
    assert session.selection is not None
    session.clear_scores()
    assert session.selection is None and session.view.prediction is None
    assert len(session.score_table) == 0
