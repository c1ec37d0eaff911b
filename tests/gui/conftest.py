"""GUI test fixtures: a tiny synthetic category, a tiny real model, and windows built on them.

Logic tests run on Qt's ``offscreen`` platform (set here when there is no display) with the
3D view replaced by its placeholder; tests marked ``vtk`` need a display (``xvfb-run -a``).
Inference of the real tiny model takes about a second per sample on 2 cores, so most tests
use :class:`CachedModel`: the real model's predictions computed once, replayed through the
window's real background inference path.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DISPLAY"):
        return
    skip = pytest.mark.skip(reason="needs a display for the VTK view (run under xvfb-run -a)")
    for item in items:
        if "vtk" in item.keywords:
            item.add_marker(skip)


class CachedModel:
    """The real tiny model, but ``score_many`` replays predictions made once per session."""

    def __init__(self, model, predictions: dict) -> None:
        self._model = model
        self._predictions = predictions
        self.name = "cached-" + model.name
        self.device = model.device
        self.config = model.config
        self.image_threshold = model.image_threshold
        self.pixel_threshold = model.pixel_threshold
        self.calls = 0

    def info(self) -> dict:
        return self._model.info()

    def score_many(self, refs, progress=None, cancel=None, batch_size=1, workers=0):
        from mdss_core.api import DataError, Scored, check_cancel, report

        refs = list(refs)
        self.calls += 1
        for i, ref in enumerate(refs):
            check_cancel(cancel, "prediction")
            try:
                ref.load()  # read the files like the real model (broken files are skipped)
            except DataError as exc:
                yield Scored(ref, error=exc)
            else:
                yield Scored(ref, copy.deepcopy(self._predictions[ref.key]))
            report(progress, "predict", i + 1, len(refs), ref.key)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    # The demo and any trained demo model go to a throw-away cache, never the user's.
    monkeypatch.setenv("MDSS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MDSS_WORKSPACE", str(tmp_path / "workspace"))


@pytest.fixture(scope="session")
def gui_dataset(tiny_dataset: Path) -> Path:
    return tiny_dataset


@pytest.fixture(scope="session")
def gui_model_file(tiny_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.mdss"
    tiny_model.save(path)
    return path


@pytest.fixture(scope="session")
def cached_predictions(tiny_model, gui_dataset) -> dict:
    from mdss_core.io import open_dataset

    refs = open_dataset(gui_dataset).select(split="test").refs
    return {ref.key: prediction for ref, prediction in tiny_model.predict_many(refs)}


@pytest.fixture
def fast_model(tiny_model, cached_predictions) -> CachedModel:
    return CachedModel(tiny_model, cached_predictions)


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    from mdss_app.settings import AppSettings

    return AppSettings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))


@pytest.fixture
def window(qtbot, settings):
    from mdss_app.main_window import MainWindow

    win = MainWindow(settings=settings, enable_vtk=False, interactive=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def open_and_score(qtbot, win, folder: Path, model) -> None:
    """Open ``folder``, use ``model`` and wait until the window has scored every sample."""
    with qtbot.waitSignal(win.commands.dataset_loaded, timeout=20000):
        win.commands.open_folder(folder)
    with qtbot.waitSignal(win.commands.inference_finished, timeout=60000) as blocker:
        win.commands.use_model(model, "model.mdss", "CPU")
    assert blocker.args == ["done"]
    qtbot.waitUntil(lambda: win.session.view.prediction is not None, timeout=10000)
    qtbot.waitUntil(lambda: not win.commands.metrics_running, timeout=30000)


@pytest.fixture
def scored_window(qtbot, window, gui_dataset, fast_model):
    open_and_score(qtbot, window, gui_dataset, fast_model)
    return window
