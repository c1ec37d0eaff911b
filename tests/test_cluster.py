"""Archive-scale scoring: the run journal and resume (no Ray needed), scoring on Ray actors
(one shared local Ray instance, 2 CPUs; skipped when Ray is not installed), train-all."""

from __future__ import annotations

import csv
import filecmp
import json
import os
import re
import sys
import threading
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from mdss_core.cli.main import main as cli
from mdss_core.cluster.journal import JOURNAL_NAME
from mdss_core.cluster.predict_run import RunOptions, RunSummary, predict_to_folder
from mdss_core.errors import Cancelled, MDSSError
from mdss_core.io import open_dataset


@pytest.fixture(scope="module")
def model_file(tiny_model, tmp_path_factory) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("model") / "m.mdss")


@pytest.fixture(scope="module")
def refs(tiny_dataset):
    return list(open_dataset(tiny_dataset))


@pytest.fixture(scope="module")
def plain_out(model_file, tiny_dataset, tmp_path_factory) -> Path:
    """The reference: a plain `mdss predict` run (in this process, in input order)."""
    out = tmp_path_factory.mktemp("plain") / "out"
    assert cli(["predict", str(model_file), str(tiny_dataset), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def output_files(out: Path) -> list[str]:
    """Every file a run leaves, relative (the journal aside: its lines follow arrival order)."""
    return sorted(
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and p.name != JOURNAL_NAME
    )


def assert_same_output(out: Path, reference: Path) -> None:
    """The same files, decisions and regions; maps, scores and overlays equal up to float
    rounding. Torch on a CPU sums a convolution differently with another number of threads
    (a Ray actor gets one CPU; the driver here may have more): the last bits of a map may
    differ (measured ≤ 5e-7), and then a printed score's last digit or an overlay pixel."""
    names = output_files(reference)
    assert output_files(out) == names
    assert "scores.csv" in names and "regions.csv" in names and "report.html" in names
    for name in names:
        a, b = out / name, reference / name
        if filecmp.cmp(a, b, shallow=False):
            continue
        if name.endswith(".tiff"):
            np.testing.assert_allclose(tifffile.imread(a), tifffile.imread(b), atol=1e-5)
        elif name.endswith(".png"):
            diff = np.abs(cv2.imread(str(a)).astype(int) - cv2.imread(str(b)).astype(int))
            assert (diff > 2).mean() < 1e-3, name
        elif name.endswith(".csv"):
            assert _rows(a) == _rows(b), name
        else:
            assert _rounded(a.read_text()) == _rounded(b.read_text()), name


def _rounded(text: str) -> str:
    """Numbers to 4 significant digits (a float's last printed digit may differ)."""
    return re.sub(r"-?\d+\.\d+(?:e[-+]?\d+)?", lambda m: f"{float(m.group()):.4g}", text)


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return [[_rounded(cell) for cell in row] for row in csv.reader(handle)]


def scoring_log(path: Path):
    """Called where each sample is scored (in Ray actors too): appends its key to ``path``."""

    def on_scored(key: str) -> None:
        with open(path, "a") as handle:
            handle.write(key + "\n")

    return on_scored


def scored_keys(path: Path) -> Counter:
    return Counter(path.read_text().split()) if path.exists() else Counter()


def journal_ids(out: Path) -> list[str]:
    lines = (out / JOURNAL_NAME).read_text().splitlines()[1:]
    return [json.loads(line)["id"] for line in lines]


def interrupted_after(k: int):
    """A progress callback and a cancel token: the run stops after ``k`` samples."""
    cancel = threading.Event()

    def progress(p) -> None:
        if p.stage == "predict" and p.step >= k:
            cancel.set()

    return progress, cancel


# --- the journal and resume, scored in this process -----------------------------------------


def test_plain_predict_journals_every_sample(plain_out, refs):
    ids = journal_ids(plain_out)
    assert len(ids) == len(refs) == len(set(ids))


def test_interrupted_run_resumes_without_rescoring(
    model_file, tiny_dataset, refs, plain_out, tmp_path
):
    out, log = tmp_path / "out", tmp_path / "scored.txt"
    progress, cancel = interrupted_after(5)
    summary = RunSummary(len(refs))
    options = RunOptions(data_folder=str(tiny_dataset), on_scored=scoring_log(log))
    with pytest.raises(Cancelled):
        predict_to_folder(model_file, refs, out, options, progress, cancel, summary)
    first = scored_keys(log)
    assert summary.written == len(journal_ids(out)) >= 5 and not (out / "scores.csv").exists()
    log.unlink()
    options.resume = True
    again = predict_to_folder(model_file, refs, out, options)
    assert again.restored == summary.written and again.written == len(refs) - summary.written
    second = scored_keys(log)
    assert not set(first) & set(second)  # the finished samples were not scored again
    assert sorted(first + second) == sorted(r.key for r in refs)
    assert sorted(journal_ids(out)) == sorted(set(journal_ids(out)))  # nothing journalled twice
    assert_same_output(out, plain_out)


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path):
    from mdss_core.cluster.journal import RunJournal, read_journal

    header = {"model_sha256": "a" * 64, "overlays": ["fused"]}
    journal = RunJournal.start(tmp_path, header)
    journal.append({"id": "test/good/000", "row": {"score_fused": 1.5}})
    journal.append({"id": "test/good/001", "row": {}})
    text = (tmp_path / JOURNAL_NAME).read_text()
    (tmp_path / JOURNAL_NAME).write_text(text[: len(text) - 9])  # the last line, torn
    assert [e["id"] for e in read_journal(tmp_path, header)] == ["test/good/000"]
    assert read_journal(tmp_path / "elsewhere", header) is None


def test_resume_refuses_a_journal_of_another_model(model_file, refs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / JOURNAL_NAME).write_text(
        json.dumps({"format": "mdss-predict-journal", "version": 1, "model_sha256": "0" * 64})
        + "\n"
    )
    with pytest.raises(MDSSError, match="another model sha256"):
        predict_to_folder(model_file, refs, out, RunOptions(resume=True))
    assert not (out / "scores.csv").exists()


def test_ray_missing_is_one_line_naming_the_extra(
    model_file, tiny_dataset, tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError
    args = ["predict", str(model_file), str(tiny_dataset), "--out", str(tmp_path), "--ray"]
    assert cli(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mdss: error: Ray is not installed") and "mdss[cluster]" in line


def test_an_unreachable_cluster_address_fails_in_seconds():
    import socket

    from mdss_core.cluster.ray_env import _check_reachable

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MDSSError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port}"):
        _check_reachable(f"127.0.0.1:{port}")


# --- on Ray ----------------------------------------------------------------------------------


def test_ray_predict_writes_what_the_plain_run_writes(
    ray_local, model_file, tiny_dataset, plain_out, tmp_path
):
    out = tmp_path / "out"
    args = ["predict", str(model_file), str(tiny_dataset), "--out", str(out), "--ray"]
    assert cli([*args, "--actors", "2"]) == 0
    assert_same_output(out, plain_out)
    # One actor whose worker process prepares the samples ahead: the same files again.
    out = tmp_path / "out_workers"
    args[args.index("--out") + 1] = str(out)
    assert cli([*args, "--actors", "1", "--workers", "1"]) == 0
    assert_same_output(out, plain_out)


def test_ray_predict_skips_an_unreadable_sample_and_scores_the_rest(
    ray_local, model_file, tiny_dataset, tmp_path, capsys
):
    import shutil

    data = shutil.copytree(tiny_dataset, tmp_path / "data")
    refs = list(open_dataset(data, split="test"))
    refs[3].xyz_path.write_bytes(b"not a tiff")
    out = tmp_path / "out"
    args = ["predict", str(model_file), str(data), "--split", "test", "--out", str(out)]
    assert cli([*args, "--ray", "--no-png"]) == 2
    err = capsys.readouterr().err
    assert f"mdss: skipped {refs[3].xyz_path}: " in err
    assert f"1 of {len(refs)} samples could not be scored" in err
    keys = [line.split(",")[0] for line in (out / "scores.csv").read_text().splitlines()[1:]]
    assert keys == [r.key for r in refs if r is not refs[3]]


def test_a_dead_actor_loses_no_sample_and_writes_none_twice(
    ray_local, model_file, tiny_dataset, refs, plain_out, tmp_path
):
    out, log, died = tmp_path / "out", tmp_path / "scored.txt", tmp_path / "died"
    count = scoring_log(log)

    def dies_once_after_five(key: str) -> None:  # runs in the actor
        count(key)
        if len(log.read_text().split()) >= 5 and not died.exists():
            died.touch()
            os._exit(1)

    options = RunOptions(
        data_folder=str(tiny_dataset),
        ray_address="",
        actors=2,
        chunk_size=2,
        on_scored=dies_once_after_five,
    )
    summary = predict_to_folder(model_file, refs, out, options)
    assert died.exists() and summary.written == len(refs)
    scored = scored_keys(log)
    assert set(scored) == {r.key for r in refs}
    # Only the lost chunk's samples (scored, never returned) were scored again.
    assert 1 <= sum(n > 1 for n in scored.values()) <= options.chunk_size
    assert max(scored.values()) == 2
    ids = journal_ids(out)
    assert len(ids) == len(set(ids)) == len(refs)  # each sample written once
    assert_same_output(out, plain_out)


def test_actors_that_always_die_stop_the_run_with_a_message(ray_local, model_file, refs, tmp_path):
    def crashes(key: str) -> None:  # a sample that kills every actor scoring it
        os._exit(1)

    options = RunOptions(ray_address="", actors=1, chunk_size=4, on_scored=crashes)
    with pytest.raises(MDSSError, match=r"Ray workers died 5 times in a row .* --resume"):
        predict_to_folder(model_file, refs, tmp_path / "out", options)
    assert journal_ids(tmp_path / "out") == []


def test_interrupted_ray_run_resumes_without_rescoring(
    ray_local, model_file, tiny_dataset, refs, plain_out, tmp_path
):
    out, log = tmp_path / "out", tmp_path / "scored_on_resume.txt"
    progress, cancel = interrupted_after(6)
    options = RunOptions(
        data_folder=str(tiny_dataset),
        ray_address="",
        actors=2,
        chunk_size=2,
        on_scored=scoring_log(tmp_path / "scored_first.txt"),
    )
    summary = RunSummary(len(refs))
    with pytest.raises(Cancelled):
        predict_to_folder(model_file, refs, out, options, progress, cancel, summary)
    written = set(journal_ids(out))
    assert len(written) == summary.written >= 6 and not (out / "scores.csv").exists()
    # Each run logs to its own file: ray.kill returns before a stopped run's actors are gone,
    # and one still finishing a sample must not count as the resumed run scoring it.
    options.on_scored, options.resume = scoring_log(log), True
    again = predict_to_folder(model_file, refs, out, options)
    assert again.restored == len(written)
    rescored = {r.key for r in refs if f"{r.key}\t{r.rgb_path}" in written} & set(scored_keys(log))
    assert rescored == set()
    assert sum(scored_keys(log).values()) == len(refs) - len(written)
    assert_same_output(out, plain_out)


# --- train-all -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_categories(tmp_path_factory) -> Path:
    """A dataset root with a good category (ring) and a broken one (its clouds unreadable)."""
    import shutil

    from mdss_core.synth import generate_dataset

    out = tmp_path_factory.mktemp("root")
    (ring,) = generate_dataset(out, ["ring"], n_train=6, n_val=2, n_test=2, size=64, seed=3)
    broken = shutil.copytree(ring, out / "broken")
    for tiff in (broken / "train").rglob("*.tiff"):
        tiff.write_bytes(b"not a tiff")
    return out


def train_all_args(root: Path, out: Path) -> list[str]:
    return ["train-all", str(root), "--out", str(out), "--preset", "tiny", "--device", "cpu"]


def check_train_all_output(out: Path, err: str) -> None:
    from mdss_core.model import MDSSModel

    assert MDSSModel.load(out / "ring.mdss").name
    assert not (out / "broken.mdss").exists()
    (failed,) = [line for line in err.splitlines() if line.startswith("broken: failed: ")]
    assert "broken" in failed and ".tiff" in failed  # names the file that failed
    assert "mdss: error: 1 of 2 categories failed: broken" in err


def test_train_all_in_turn_reports_a_failed_category_and_trains_the_rest(
    two_categories, tmp_path, capsys
):
    out = tmp_path / "models"
    assert cli(train_all_args(two_categories, out)) == 2
    check_train_all_output(out, capsys.readouterr().err)
    # Run again: the trained category is kept, not trained again.
    assert cli([*train_all_args(two_categories, out), "--category", "ring"]) == 0
    assert "ring.mdss exists" in capsys.readouterr().out


def test_train_all_on_ray_one_task_per_category(ray_local, two_categories, tmp_path, capsys):
    out = tmp_path / "models"
    assert cli([*train_all_args(two_categories, out), "--ray"]) == 2
    check_train_all_output(out, capsys.readouterr().err)


def test_train_all_refuses_a_folder_without_categories(tiny_dataset, tmp_path, capsys):
    assert cli(train_all_args(tiny_dataset, tmp_path / "m")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mdss: error: {tiny_dataset}: no category folders here")
