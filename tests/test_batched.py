"""Batched, pipelined prediction gives what one-by-one prediction gives, in order."""

from __future__ import annotations

import csv
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from mdss_core.batched import predict_batched, score_batched
from mdss_core.cli.main import main as cli
from mdss_core.devices import preparing_workers
from mdss_core.errors import Cancelled, DataError
from mdss_core.io import open_dataset

MAPS = ("rgb_map", "map_3d", "point_map", "fused_map")


@pytest.fixture(scope="module")
def test_refs(tiny_dataset: Path) -> list:
    return list(open_dataset(tiny_dataset, split="test"))


@pytest.fixture(scope="module")
def one_by_one(tiny_model, test_refs) -> dict:
    return {ref.key: tiny_model.predict(ref.load()) for ref in test_refs}


def broken_copy(dataset: Path, folder: Path, index: int) -> tuple[list, object]:
    """A copy of the test split whose ``index``-th point cloud is not a TIFF."""
    shutil.copytree(dataset, folder)
    refs = list(open_dataset(folder, split="test"))
    refs[index].xyz_path.write_bytes(b"not a tiff")
    return refs, refs[index]


def assert_same_predictions(pairs, refs, expected: dict) -> None:
    assert [ref.key for ref, _ in pairs] == [ref.key for ref in refs]
    for ref, prediction in pairs:
        want = expected[ref.key]
        for name in MAPS:
            # Batches change only the order of float operations.
            np.testing.assert_allclose(
                getattr(prediction, name), getattr(want, name), rtol=1e-5, atol=1e-6
            )
        assert prediction.score_fused == pytest.approx(want.score_fused, rel=1e-5)
        assert prediction.is_anomalous == want.is_anomalous
        assert len(prediction.regions) == len(want.regions)


def test_batches_equal_one_by_one_prediction(tiny_model, test_refs, one_by_one):
    pairs = list(tiny_model.predict_many(test_refs, batch_size=3))
    assert_same_predictions(pairs, test_refs, one_by_one)
    assert all(p.timings_ms["branches"] > 0 for _, p in pairs)


def test_worker_processes_equal_one_by_one_prediction(tiny_model, test_refs, one_by_one):
    pairs = list(predict_batched(tiny_model, test_refs, batch_size=4, workers=2))
    assert_same_predictions(pairs, test_refs, one_by_one)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_broken_sample_fails_in_its_turn_with_its_file_named(
    tiny_model, tiny_dataset, test_refs, tmp_path, workers
):
    refs, broken = broken_copy(tiny_dataset, tmp_path / "data", 3)
    seen = []
    with pytest.raises(DataError) as caught:
        for ref, _ in predict_batched(tiny_model, refs, batch_size=2, workers=workers):
            seen.append(ref.key)
    # The samples before it were all delivered, the broken one and later ones not.
    assert seen == [ref.key for ref in refs[:3]]
    assert Path(caught.value.path) == broken.xyz_path
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("workers", [0, 1])
def test_scoring_reports_a_broken_sample_and_goes_on(
    tiny_model, tiny_dataset, one_by_one, tmp_path, workers
):
    refs, broken = broken_copy(tiny_dataset, tmp_path / "data", 3)
    reports = []
    scored = list(score_batched(tiny_model, refs, 2, workers, progress=reports.append))
    assert [s.ref.key for s in scored] == [ref.key for ref in refs]
    assert [s.error is None for s in scored] == [ref is not broken for ref in refs]
    assert Path(scored[3].error.path) == broken.xyz_path and scored[3].prediction is None
    good = [(s.ref, s.prediction) for s in scored if s.error is None]
    assert_same_predictions(good, [r for r in refs if r is not broken], one_by_one)
    assert [r.step for r in reports] == list(range(1, len(refs) + 1))


def test_cli_predict_skips_a_broken_sample_and_scores_the_rest(
    tiny_model, tiny_dataset, tmp_path, capsys
):
    refs, broken = broken_copy(tiny_dataset, tmp_path / "data", 2)
    model = tiny_model.save(tmp_path / "m.mdss")
    out = tmp_path / "out"
    data = str(tmp_path / "data")
    args = ["predict", str(model), data, "--split", "test", "--out", str(out), "--no-png"]
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert f"mdss: skipped {broken.xyz_path}: " in err
    (error,) = [line for line in err.splitlines() if line.startswith("mdss: error:")]
    assert f"1 of {len(refs)} samples could not be scored" in error
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert [r["key"] for r in rows] == [r.key for r in refs if r is not broken]
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Not scored (1)" in report and str(broken.xyz_path) in report


def test_data_error_survives_crossing_processes():
    error = pickle.loads(pickle.dumps(DataError("/data/x.tiff", "not a tiff")))
    assert isinstance(error, DataError)
    assert str(error) == "/data/x.tiff: not a tiff" and error.problem == "not a tiff"


def test_cancel_stops_between_samples(tiny_model, test_refs):
    cancel = threading.Event()
    seen = []
    with pytest.raises(Cancelled):
        for ref, _ in tiny_model.predict_many(test_refs, cancel=cancel, batch_size=2):
            seen.append(ref.key)
            cancel.set()
    assert len(seen) < len(test_refs)


def test_bad_batch_settings_are_refused(tiny_model, test_refs):
    with pytest.raises(ValueError, match="batch_size"):
        list(predict_batched(tiny_model, test_refs, batch_size=0))
    with pytest.raises(ValueError, match="workers"):
        list(predict_batched(tiny_model, test_refs, workers=-1))


def test_no_workers_on_cpu():
    assert preparing_workers("cpu") == 0


def test_cli_predict_in_batches_writes_the_same_scores(tiny_model, tiny_dataset, tmp_path, capsys):
    model = tiny_model.save(tmp_path / "m.mdss")
    rows = {}
    for batch in ("1", "3"):
        out = tmp_path / f"out{batch}"
        args = ["predict", str(model), str(tiny_dataset), "--split", "test", "--out", str(out)]
        assert cli([*args, "--batch", batch, "--no-png"]) == 0
        rows[batch] = list(csv.DictReader((out / "scores.csv").open()))
    assert [r["key"] for r in rows["3"]] == [r["key"] for r in rows["1"]]
    for a, b in zip(rows["1"], rows["3"], strict=True):
        assert float(a["score_fused"]) == pytest.approx(float(b["score_fused"]), rel=1e-5)
    with pytest.raises(SystemExit):
        cli(["predict", str(model), str(tiny_dataset), "--out", str(tmp_path), "--batch", "0"])
    assert "must be >= 1" in capsys.readouterr().err


def test_worker_job_does_not_import_torch():
    # Spawned workers import only what load_ready needs: no torch start-up per worker.
    code = (
        "import sys, mdss_core.preprocess.ready, mdss_core.io; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
