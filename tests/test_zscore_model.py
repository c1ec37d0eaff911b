"""A model whose student also sees the normal image, fused as z-scores (the ``cpu`` preset's
recipe at the ``tiny`` preset's size): training, prediction, save/load and calibration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mdss_core import api
from mdss_core.cli.main import main as cli
from mdss_core.config import get_preset
from mdss_core.fusion import Calibration, MapStats, PeakStats, calibrate
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel


@pytest.fixture(scope="module")
def zscore_model(tiny_dataset: Path) -> MDSSModel:
    tiny = get_preset("tiny")
    config = replace(
        tiny,
        rgb=replace(
            tiny.rgb, normals=True, lr_schedule="cosine", normals_memory=32, normals_memory_draws=2
        ),
        rgb_blur_sigma=1.0,
        fusion="zscore",
    )
    return MDSSModel.fit(open_dataset(tiny_dataset), config, device="cpu")


def test_cpu_preset_is_the_measured_recipe() -> None:
    cpu = get_preset("cpu")
    assert cpu.fusion == "zscore" and cpu.rgb.normals and cpu.rgb.lr_schedule == "cosine"
    assert cpu.rgb_blur_sigma == 4.0 and cpu.rgb.crop == 128 and cpu.rgb.normals_memory == 4096


def test_zscore_model_predicts_saves_and_reloads(zscore_model, tiny_dataset, tmp_path) -> None:
    cal = zscore_model.calibration
    assert cal.rule == "zscore" and cal.normals is not None and cal.peaks.normals is not None
    info = zscore_model.info()
    assert info["fusion"] == "zscore" and "MobileNetV2" in info["teacher_text"]
    refs = open_dataset(tiny_dataset, split="test").refs[:3]
    first = [zscore_model.predict(ref.load()) for ref in refs]
    for p in first:
        assert p.normal_map is not None and p.normal_map.shape == p.shape
        # The fused map is the sum of the two maps on the z scale, pixel by pixel.
        np.testing.assert_allclose(p.fused_map, p.rgb_map_aligned + p.map_3d, atol=1e-4)
        assert p.score_fused == pytest.approx(p.score_rgb + p.score_3d, abs=1e-5)
        assert (p.point_map >= 0).all()
    # The cloud's colours and caption follow the 3D map: |sdf| and the normal image.
    assert info["geometry_maps"] == ["sdf", "normals"]
    assert "normals" in api.map_captions(zscore_model)["cloud"]
    # The normal map comes from the memory: two coreset draws of 32 cells.
    assert zscore_model.net.rgb.memory.shape[0] == 64 and zscore_model.net.rgb.memory_draws == 2
    path = zscore_model.save(tmp_path / "z.mdss")
    loaded = MDSSModel.load(path)
    assert loaded.calibration == cal and loaded.config == zscore_model.config
    assert loaded.net.rgb.memory_draws == 2
    for ref, before in zip(refs, first, strict=True):
        after = loaded.predict(ref.load())
        assert after.score_fused == pytest.approx(before.score_fused, rel=1e-4, abs=1e-4)


def test_zscore_calibration_scores_and_thresholds() -> None:
    rng = np.random.default_rng(0)
    masks = [np.ones((8, 8), bool)] * 4
    rgb = [rng.uniform(0, 1, (8, 8)).astype(np.float32) for _ in range(4)]
    sdf = [rng.uniform(0, 0.1, (8, 8)).astype(np.float32) for _ in range(4)]
    nrm = [rng.uniform(0, 2, (8, 8)).astype(np.float32) for _ in range(4)]
    cal = calibrate(rgb, sdf, masks, nrm, rule="zscore")
    fused = [cal.fuse(r, s, n) for r, s, n in zip(rgb, sdf, nrm, strict=True)]
    assert cal.image_threshold == pytest.approx(max(f.score_fused for f in fused))
    assert cal.pixel_threshold == pytest.approx(max(float(f.fused.max()) for f in fused))
    # A sample whose RGB peak is 3 std above the normal peaks scores 3 + its geometry score.
    peak = cal.peaks.rgb.mean + 3 * cal.peaks.rgb.std
    spiked = rgb[0].copy()
    spiked[0, 0] = peak
    out = cal.fuse(spiked, sdf[0], nrm[0])
    assert out.score_fused == pytest.approx(3.0 + out.score_geometry, rel=1e-5)
    assert Calibration.from_dict(cal.to_dict()) == cal
    # The points are coloured by the 3D score the decision uses: the mean of both z-scores.
    assert cal.geometry_maps() == ["sdf", "normals"]
    z_points = cal.point_scale(sdf[0], nrm[0])
    np.testing.assert_allclose(z_points, np.maximum(fused[0].geometry, 0.0), atol=1e-5)
    assert not np.allclose(z_points, cal.point_scale(sdf[0]))  # not the |sdf| half alone
    sdf_only = calibrate(rgb, sdf, masks, rule="zscore")
    assert sdf_only.geometry_maps() == ["sdf"]
    np.testing.assert_allclose(sdf_only.point_scale(sdf[0], nrm[0]), sdf_only.point_scale(sdf[0]))


def test_zscore_rule_needs_peaks_and_unknown_rules_fail() -> None:
    stats = MapStats(0.0, 1.0)
    with pytest.raises(ValueError):
        Calibration(stats, stats, 1.0, 1.0, 2, rule="zscore")
    with pytest.raises(ValueError):
        Calibration(stats, stats, 1.0, 1.0, 2, rule="mean", peaks=PeakStats(stats, stats))


def test_cli_calibrate_sets_thresholds_from_normal_samples(
    zscore_model, tiny_dataset, tmp_path, capsys
) -> None:
    source = zscore_model.save(tmp_path / "a.mdss")
    out = tmp_path / "b.mdss"
    args = ["calibrate", str(source), str(tiny_dataset), "--quantile", "0.5", "--out", str(out)]
    assert cli(args) == 0 and "quantile 0.5 of 2 normal samples" in capsys.readouterr().out
    model = MDSSModel.load(out)
    validation = open_dataset(tiny_dataset, split="validation")
    scores = [model.predict(ref.load()).score_fused for ref in validation]
    assert model.image_threshold == pytest.approx(float(np.quantile(scores, 0.5)), abs=1e-4)
    assert model.config.threshold_quantile == 0.5
    assert MDSSModel.load(source).image_threshold == zscore_model.image_threshold  # untouched
    assert cli(args) == 2 and "already exists" in capsys.readouterr().err
    bad = ["calibrate", str(source), str(tiny_dataset), "--quantile", "0", "--out", str(out)]
    assert cli([*bad, "--force"]) == 2 and "--quantile" in capsys.readouterr().err
