"""The façade: fit → predict → save/load round trip, bad model files, cancel, CLI."""

from __future__ import annotations

import csv
import json
import threading
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import save_file

from mdss_core.cli.main import main as cli
from mdss_core.errors import Cancelled, ModelFileError
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel


def test_prediction_is_at_sample_resolution_with_consistent_scores(tiny_model, tiny_dataset):
    ref = open_dataset(tiny_dataset).select(split="test")[-1]
    sample = ref.load()
    p = tiny_model.predict(sample)
    for name in ("rgb_map", "rgb_map_aligned", "map_3d", "point_map", "fused_map"):
        arr = getattr(p, name)
        assert arr.shape == sample.shape and arr.dtype == np.float32, name
    assert p.object_mask.shape == sample.shape and p.object_mask.dtype == bool
    assert not p.point_map[~p.object_mask].any()  # scores only where object points are
    np.testing.assert_allclose(p.fused_map, np.maximum(p.rgb_map_aligned, p.map_3d), rtol=1e-6)
    assert p.score_fused == pytest.approx(p.score_rgb * p.score_3d, rel=1e-5)
    assert p.pixel_threshold == tiny_model.pixel_threshold
    assert int(p.regions.labels.max()) == (max((r.label for r in p.regions), default=0))


def test_save_load_round_trip_gives_identical_predictions(tiny_model, tiny_dataset, tmp_path):
    path = tiny_model.save(tmp_path / "m.mdss")
    loaded = MDSSModel.load(path, device="cpu")
    assert loaded.config == tiny_model.config
    assert loaded.calibration == tiny_model.calibration
    assert loaded.teacher_origin == tiny_model.teacher_origin
    sample = open_dataset(tiny_dataset).select(split="test")[0].load()
    a, b = tiny_model.predict(sample), loaded.predict(sample)
    np.testing.assert_array_equal(a.fused_map, b.fused_map)
    np.testing.assert_array_equal(a.point_map, b.point_map)
    assert a.score_fused == b.score_fused
    assert not list(tmp_path.glob(".*tmp"))  # atomic write left no temp file


def test_bad_model_files_give_one_line_errors(tiny_model, tmp_path):
    junk = tmp_path / "junk.mdss"
    junk.write_bytes(b"definitely not safetensors")
    with pytest.raises(ModelFileError, match="junk.mdss: not an mdss model file") as info:
        MDSSModel.load(junk)
    assert "\n" not in str(info.value)
    foreign = tmp_path / "foreign.safetensors"
    import torch

    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "something-else"})
    with pytest.raises(ModelFileError, match="not an mdss model file"):
        MDSSModel.load(foreign)
    newer = tmp_path / "newer.mdss"
    save_file(
        {"w": torch.zeros(2)}, str(newer), metadata={"format": "mdss-model", "format_version": "99"}
    )
    with pytest.raises(ModelFileError, match="newer mdss"):
        MDSSModel.load(newer)
    with pytest.raises(ModelFileError, match="not found"):
        MDSSModel.load(tmp_path / "missing.mdss")


def test_cancel_stops_training_and_keeps_the_previous_model(tiny_dataset, tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "keep.mdss")
    before = path.read_bytes()
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.stage)
        if p.stage == "rgb" and p.step >= 1:
            cancel.set()

    with pytest.raises(Cancelled):
        MDSSModel.fit(open_dataset(tiny_dataset), "tiny", progress=progress, cancel=cancel)
    assert "rgb" in seen and "geometry" not in seen
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mdss"]


def test_training_is_deterministic_with_a_seed(tiny_dataset, tiny_model):
    again = MDSSModel.fit(open_dataset(tiny_dataset), "tiny", device="cpu")
    assert again.calibration == tiny_model.calibration


def test_cli_train_predict_evaluate(tiny_dataset, tmp_path, capsys):
    model = tmp_path / "cli.mdss"
    assert cli(["train", str(tiny_dataset), "--out", str(model), "--preset", "tiny"]) == 0
    assert "teacher: backbone: ImageNet MobileNetV2 blocks 3/6/13" in capsys.readouterr().out
    assert cli(["train", str(tiny_dataset), "--out", str(model), "--preset", "tiny"]) == 2
    assert "already exists" in capsys.readouterr().err
    out = tmp_path / "pred"
    assert (
        cli(["predict", str(model), str(tiny_dataset), "--split", "test", "--out", str(out)]) == 0
    )
    rows = list(csv.DictReader((out / "scores.csv").open()))
    test_refs = open_dataset(tiny_dataset, split="test")
    assert len(rows) == len(test_refs)
    for row in rows:  # 1.0 = the image threshold, and the decision agrees with it
        relative = float(row["score_relative"])
        assert relative == pytest.approx(
            float(row["score_fused"]) / float(row["image_threshold"]), rel=1e-3
        )
        assert (row["decision"] == "anomalous") == (relative >= 1.0 - 1e-9)
    assert {row["model_name"] for row in rows} == {MDSSModel.load(model).name}
    assert (out / "regions.csv").is_file() and 'class="roc-fused"' in (
        out / "report.html"
    ).read_text(encoding="utf-8")
    first = test_refs[0]
    for kind in ("rgb", "3d", "fused"):
        assert (out / first.defect / f"{first.sample_id}_{kind}.tiff").is_file()
    import tifffile

    fused = tifffile.imread(out / first.defect / f"{first.sample_id}_fused.tiff")
    assert fused.dtype == np.float32 and fused.shape == first.load().shape
    report = tmp_path / "eval.json"
    assert cli(["evaluate", str(model), str(tiny_dataset), "--json", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "RGB+3D I-AUROC" in printed and "mean" in printed
    assert "95 % interval" in printed
    saved = json.loads(report.read_text())
    counts = saved["counts"]
    assert counts["normal"] + counts["anomalous"] == len(test_refs)
    low, high = saved["i_auroc_interval_95"]["fused"]
    assert 0.0 <= low <= saved["rows"]["all"]["fused"]["i_auroc"] <= high <= 1.0
    decided = saved["decisions"]
    flagged = [r["score_fused"] >= decided["threshold"] for r in saved["samples"]]
    assert decided["defective_flagged"] + decided["normal_flagged"] == sum(flagged)
    assert decided["defective"] == counts["anomalous"]
    assert f"{decided['defective_flagged']} of {decided['defective']} defective" in printed


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    (tmp_path / "m.mdss").write_text("nope")
    assert cli(["predict", str(tmp_path / "m.mdss"), str(tmp_path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mdss: error:") and "\n" not in err


@pytest.mark.realdata
def test_real_samples_train_briefly_and_predict_at_400(real_data_root: Path, tmp_path):
    from dataclasses import replace

    from mdss_core.config import get_preset
    from mdss_core.preprocess.pipeline import PreprocessConfig

    config = get_preset("tiny")
    config.preprocess = PreprocessConfig(size=128)
    config.sdf = replace(config.sdf, points_per_patch=128, sigma_neighbor=16)
    dataset = open_dataset(real_data_root)
    train = [r for r in dataset if r.split == "train"][:4] + list(dataset.select("validation"))
    model = MDSSModel.fit(train, config, device="cpu")
    p = model.predict(dataset.select("test", "hole")[0].load())
    assert p.fused_map.shape == (400, 400) and np.isfinite(p.fused_map).all()
    assert p.object_mask.mean() < 0.5  # the background plane is gone
