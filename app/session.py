"""The inspector's state without Qt: what is open, what was scored, the thresholds, what is
shown and what is selected.

Widgets render it and send it intents (``set_pixel_threshold``, ``inspect_pixel``, …); it tells
them what changed through plain callbacks, the events below (napari's ``ViewerModel`` is the
pattern). Predictions are immutable and the thresholds live here only: a decision or a region
is always derived from a prediction and the current thresholds, never stored into either.

Regions at a new pixel threshold take a connected-components pass over a full-resolution map,
so they are computed by an injected ``runner`` (a background thread in the GUI, inline in
tests); the newest request wins, and requests made while one runs are coalesced.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar

import numpy as np

from mdss_core import api
from mdss_core.api import DatasetIndex, Prediction, Region, RegionSet, Sample, SampleRef

T = TypeVar("T")
Runner = Callable[[Callable[[], T], Callable[[T], None]], None]


def run_now(job: Callable[[], T], done: Callable[[T], None]) -> None:
    """The simplest runner: the job on the calling thread (tests, scripts)."""
    done(job())


class Event:
    """Callbacks to call with the new state; ``connect`` is all a listener needs."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.append(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class SessionEvents:
    def __init__(self) -> None:
        self.closing = Event()  # (): another dataset comes; views drop zoom, camera, crosshair
        self.dataset = Event()  # (DatasetIndex | None)
        self.model = Event()  # (model)
        self.scores_cleared = Event()  # ()
        self.scored = Event()  # (SampleRef, Prediction)
        self.thresholds = Event()  # (Thresholds, the previous Thresholds)
        self.selected = Event()  # (SampleRef | None): the sample to load and show
        self.view = Event()  # (View): another sample or prediction is shown
        self.regions = Event()  # (View): the shown prediction's regions at the pixel threshold
        self.selection = Event()  # (Selection | None)


@dataclass(frozen=True)
class Thresholds:
    pixel: float = math.nan  # fused pixel score at which a pixel belongs to a region
    image: float = math.nan  # fused image score at which a sample is flagged
    model_pixel: float = math.nan  # the model's defaults
    model_image: float = math.nan


@dataclass(frozen=True)
class View:
    """What is shown: a sample, its prediction when scored, and its regions once derived."""

    ref: SampleRef | None = None
    sample: Sample | None = None
    prediction: Prediction | None = None
    regions: RegionSet | None = None  # at Thresholds.pixel; None while they are computed

    @property
    def key(self) -> str | None:
        return None if self.ref is None else self.ref.key

    @property
    def loading(self) -> bool:
        """A sample is chosen and its pixels are on their way (views keep the previous one)."""
        return self.ref is not None and self.sample is None


@dataclass(frozen=True)
class Selection:
    """The clicked pixel: the region under it, or that pixel's scores when it is in none."""

    row: int
    col: int
    region: Region | None = None
    mask: np.ndarray | None = None  # the region's pixels
    scores: dict[str, float] = field(default_factory=dict)  # when in no region
    xyz_mm: tuple[float, float, float] | None = None  # region centre or the pixel's point


class ScoreTable:
    """Fused image scores and labels of the scored samples; adding one is O(1) (amortised)."""

    def __init__(self) -> None:
        self._scores = np.empty(64)
        self._labels = np.empty(64, int)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, score: float, label: int) -> None:
        if self._count == len(self._scores):
            self._scores = np.resize(self._scores, 2 * self._count)
            self._labels = np.resize(self._labels, 2 * self._count)
        self._scores[self._count], self._labels[self._count] = score, label
        self._count += 1

    def clear(self) -> None:
        self._count = 0

    @property
    def scores(self) -> np.ndarray:
        return self._scores[: self._count]

    @property
    def labels(self) -> np.ndarray:
        return self._labels[: self._count]


class InspectorSession:
    """Dataset, model, predictions, thresholds, the shown sample and the selection."""

    def __init__(self, runner: Runner = run_now) -> None:
        self.events = SessionEvents()
        self._runner = runner
        self.dataset: DatasetIndex | None = None
        self.dataset_is_demo = False
        self._refs: frozenset[SampleRef] = frozenset()
        self.model: api.Model | None = None
        self.model_path = ""
        self.device_text = ""  # where the model runs, in words
        self._predictions: dict[str, Prediction] = {}
        self.score_table = ScoreTable()
        self.problems: list[str] = []
        self.thresholds = Thresholds()
        self.view = View()
        self.selection: Selection | None = None
        self._selected_pixel: tuple[int, int] | None = None
        self._area: tuple[str, np.ndarray] | None = None  # (sample key, pixel areas in mm²)
        self._wanted: tuple[str, float] | None = None  # regions the view is waiting for
        self._running: tuple[str, float] | None = None

    # ----- dataset and model -------------------------------------------------------------
    def set_dataset(self, dataset: DatasetIndex, demo: bool = False) -> None:
        """Show ``dataset`` instead: nothing of the previous one (sample, selection, scores)."""
        self.events.closing.emit()
        self.dataset, self.dataset_is_demo = dataset, demo
        self._refs = frozenset(dataset.refs)
        self.clear_scores()
        self._show(View())
        self.events.dataset.emit(dataset)

    def set_model(self, model: api.Model, path: str = "", device_text: str = "") -> None:
        """Use ``model`` from now on; the thresholds go back to its own."""
        self.model, self.model_path = model, str(path)
        self.device_text = device_text or str(model.device)
        pixel, image = float(model.pixel_threshold), float(model.image_threshold)
        self.clear_scores()
        self._set_thresholds(Thresholds(pixel, image, pixel, image))
        self.events.model.emit(model)

    # ----- predictions -------------------------------------------------------------------
    @property
    def predictions(self) -> Mapping[str, Prediction]:
        return MappingProxyType(self._predictions)

    def clear_scores(self) -> None:
        self._predictions.clear()
        self.score_table.clear()
        self.problems = []
        self.events.scores_cleared.emit()
        if self.view.prediction is not None:
            self._show(replace(self.view, prediction=None, regions=None))

    def add_scored(self, ref: SampleRef, prediction: Prediction) -> None:
        if ref not in self._refs:
            return  # a late result for the previous folder (its keys may repeat here)
        self._predictions[ref.key] = prediction
        self.score_table.add(prediction.score_fused, ref.label)
        self.events.scored.emit(ref, prediction)
        if ref == self.view.ref and self.view.sample is not None:
            self._show(replace(self.view, prediction=prediction, regions=None))

    def scored_items(self) -> list[tuple[SampleRef, Prediction]]:
        """Scored samples in the dataset's order."""
        if self.dataset is None:
            return []
        return [
            (r, self._predictions[r.key]) for r in self.dataset.refs if r.key in self._predictions
        ]

    def top_sample(self) -> str | None:
        """Key of the highest fused image score."""
        if not self._predictions:
            return None
        return max(self._predictions, key=lambda k: self._predictions[k].score_fused)

    def is_flagged(self, prediction: Prediction) -> bool:
        return prediction.score_fused >= self.thresholds.image

    # ----- thresholds ----------------------------------------------------------------------
    def set_pixel_threshold(self, value: float) -> None:
        if math.isfinite(value) and value != self.thresholds.pixel:
            self._set_thresholds(replace(self.thresholds, pixel=float(value)))

    def set_image_threshold(self, value: float) -> None:
        if math.isfinite(value) and value != self.thresholds.image:
            self._set_thresholds(replace(self.thresholds, image=float(value)))

    def reset_pixel_threshold(self) -> None:
        self.set_pixel_threshold(self.thresholds.model_pixel)

    def reset_image_threshold(self) -> None:
        self.set_image_threshold(self.thresholds.model_image)

    def _set_thresholds(self, thresholds: Thresholds) -> None:
        previous, self.thresholds = self.thresholds, thresholds
        self.events.thresholds.emit(thresholds, previous)
        if thresholds.pixel != previous.pixel and self.view.prediction is not None:
            self._request_regions()

    # ----- the shown sample ----------------------------------------------------------------
    def select(self, ref: SampleRef | None) -> None:
        """The sample to show next (its pixels arrive through :meth:`show_sample`)."""
        if ref is not None and ref != self.view.ref:
            self._show(View(ref))
        self.events.selected.emit(ref)

    def show_sample(self, sample: Sample) -> None:
        """A loaded sample; ignored unless it is the one selected last (or already shown)."""
        # The whole ref must match, not only the key: two folders share keys such as
        # ``test/good/000``, and a sample of the previous folder must never be shown.
        if self.view.ref is None or sample.ref != self.view.ref:
            return
        prediction = self._predictions.get(sample.ref.key)
        shown = self.view.sample is sample and self.view.prediction is prediction
        if not shown:
            self._show(View(sample.ref, sample, prediction))

    def _show(self, view: View) -> None:
        same_key = view.key == self.view.key
        same = same_key and (view.prediction is None) == (self.view.prediction is None)
        self.view = view
        if not same_key:
            self._wanted = None
        if not same:
            self.clear_selection()
        self.events.view.emit(view)
        if view.prediction is not None and view.sample is not None and view.regions is None:
            self._request_regions()

    # ----- regions at the pixel threshold --------------------------------------------------
    def _request_regions(self) -> None:
        prediction, threshold = self.view.prediction, self.thresholds.pixel
        if prediction is None or self.view.sample is None:
            return
        if not math.isfinite(threshold) or threshold == prediction.pixel_threshold:
            self._set_regions(prediction.regions)
            return
        self._wanted = (prediction.sample_key, threshold)
        if self._running is None:
            self._start_regions()

    def _start_regions(self) -> None:
        key, threshold = self._running = self._wanted
        prediction, sample = self.view.prediction, self.view.sample
        area = self._area[1] if self._area and self._area[0] == key else None

        def job() -> tuple[str, float, np.ndarray, RegionSet]:
            mm2 = api.pixel_area_mm2(sample.xyz, prediction.object_mask) if area is None else area
            return key, threshold, mm2, api.regions_at(prediction, threshold, mm2)

        self._runner(job, self._regions_done)

    def _regions_done(self, result: tuple[str, float, np.ndarray, RegionSet]) -> None:
        key, threshold, area, regions = result
        self._running = None
        self._area = (key, area)
        if self._wanted == (key, threshold) and self.view.key == key:
            self._set_regions(regions)
        elif self._wanted is not None and self._wanted[0] == self.view.key:
            self._start_regions()  # the newest request, made while this one ran

    def _set_regions(self, regions: RegionSet) -> None:
        self._wanted = None
        self.view = replace(self.view, regions=regions)
        self.events.regions.emit(self.view)
        if self._selected_pixel is not None:
            self.inspect_pixel(*self._selected_pixel)

    # ----- selection -----------------------------------------------------------------------
    def inspect_pixel(self, row: int, col: int) -> Region | dict[str, float] | None:
        """What a click does: select the region under the pixel, else show its scores.

        While the regions at a new threshold are being computed, the click is answered when
        they arrive (``None`` now); an unscored sample selects nothing.
        """
        view = self.view
        if view.sample is None or view.prediction is None:
            return None
        self._selected_pixel = (row, col)
        if view.regions is None or self._wanted is not None:
            return None
        region = view.regions.at(row, col)
        if region is not None:
            mask = view.regions.mask(region)
            points = view.sample.xyz[mask & view.prediction.object_mask]
            centre = tuple(points.mean(axis=0) * 1000.0) if len(points) else None
            self._set_selection(Selection(row, col, region, mask, xyz_mm=centre))
            return region
        scores = api.local_scores(view.prediction, row, col)
        xyz = view.sample.xyz[row, col]
        point = tuple(xyz * 1000.0) if xyz.any() else None
        self._set_selection(Selection(row, col, scores=scores, xyz_mm=point))
        return scores

    def clear_selection(self) -> None:
        self._selected_pixel = None
        self._set_selection(None)

    def _set_selection(self, selection: Selection | None) -> None:
        if selection is None and self.selection is None:
            return
        self.selection = selection
        self.events.selection.emit(selection)
