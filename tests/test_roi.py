"""Region of interest: parsing, masks, the model file, predictions and calibration; extra good
training samples."""

from __future__ import annotations

import numpy as np
import pytest

from mdss_core.cli.main import main as cli
from mdss_core.errors import ConfigError, DataError
from mdss_core.io import open_dataset
from mdss_core.io.layout import with_extra_good
from mdss_core.model import MDSSModel
from mdss_core.roi import Roi, make_roi, parse_polygon

LEFT_HALF = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]


def test_mask_is_resolution_independent_and_excludes_holes():
    roi = make_roi([LEFT_HALF], [[(0.1, 0.4), (0.3, 0.4), (0.3, 0.6), (0.1, 0.6)]])
    small, large = roi.mask(64, 64), roi.mask(800, 800)
    assert small[:, :32].mean() == pytest.approx(1 - 0.2 * 0.2 / 0.5, abs=0.02)
    assert not small[:, 32:].any() and not large[:, 400:].any()
    assert small.mean() == pytest.approx(large.mean(), abs=0.01)
    assert not large[400, 160] and large[100, 100]  # inside the hole / inside the ROI


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.1,0.1,0.9,0.1", "at least 3 points"),
        ("0.1,0.1,0.9,0.1,0.5", "odd number"),
        ("0.1,0.1,1.5,0.1,0.5,0.5", "outside the image"),
        ("0.1,0.1,0.5,0.5,0.9,0.9", "no area"),
        ("a,b,c,d,e,f", "expected numbers"),
    ],
)
def test_invalid_polygon_is_one_line(text, problem):
    with pytest.raises(ConfigError, match=problem) as info:
        parse_polygon(text)
    assert "\n" not in str(info.value)


def test_roi_round_trips_the_dict_and_refuses_empty():
    roi = make_roi([LEFT_HALF], [])
    assert Roi.from_dict(roi.to_dict()) == roi
    with pytest.raises(ConfigError):
        Roi()
    with pytest.raises(ConfigError, match="include polygon 1"):
        Roi.from_dict({"include": [[[0, 0], [1, 1]]]})


def test_roi_is_saved_loaded_and_zeroes_the_maps_outside(tiny_model, tiny_dataset, tmp_path):
    sample = open_dataset(tiny_dataset).select(split="test")[-1].load()
    roi = make_roi([LEFT_HALF])
    path = tiny_model.with_roi(roi).save(tmp_path / "roi.mdss")
    loaded = MDSSModel.load(path, device="cpu")
    assert loaded.roi == roi and tiny_model.roi is None  # with_roi left the original alone
    assert "include" in loaded.info()["roi_text"] or "polygon" in loaded.info()["roi_text"]
    whole, cut = tiny_model.predict(sample), loaded.predict(sample)
    outside = ~roi.mask(*sample.shape)
    for name in ("rgb_map", "rgb_map_aligned", "map_3d", "point_map", "fused_map"):
        assert not getattr(cut, name)[outside].any(), name
    assert not cut.regions.mask()[outside].any()
    inside = ~outside
    assert whole.fused_map[inside].max() > 0
    # Scores only see the inside: never above the whole image's, and lower when the whole
    # image's peak was outside.
    assert cut.score_rgb <= whole.score_rgb + 1e-6
    peak_outside = whole.rgb_map[outside].max() > whole.rgb_map[inside].max()
    assert (cut.score_rgb < whole.score_rgb) == peak_outside


def test_model_without_roi_is_unchanged(tiny_model, tiny_dataset, tmp_path):
    sample = open_dataset(tiny_dataset).select(split="test")[0].load()
    loaded = MDSSModel.load(tiny_model.save(tmp_path / "plain.mdss"), device="cpu")
    assert loaded.roi is None and loaded.info()["roi_text"] == "whole image"
    everywhere = make_roi([[(0, 0), (1, 0), (1, 1), (0, 1)]])
    a, b = loaded.predict(sample), loaded.with_roi(everywhere).predict(sample)
    np.testing.assert_array_equal(a.fused_map, b.fused_map)
    assert a.score_fused == b.score_fused


def test_recalibration_uses_the_roi(tiny_model, tiny_dataset):
    dataset = open_dataset(tiny_dataset, split="validation")
    whole = tiny_model.with_roi(None)
    whole.recalibrate(dataset)
    sliver = tiny_model.with_roi(make_roi([[(0, 0), (0.05, 0), (0.05, 0.05), (0, 0.05)]]))
    with pytest.raises(DataError, match="region of interest holds none"):
        sliver.recalibrate(dataset)  # the corner holds no part of the object
    half = tiny_model.with_roi(make_roi([LEFT_HALF]))
    half.recalibrate(dataset)
    assert half.image_threshold != whole.image_threshold


def test_cli_sets_shows_and_clears_the_roi(tiny_model, tmp_path, capsys):
    path = tiny_model.save(tmp_path / "m.mdss")
    out = tmp_path / "roi.mdss"
    assert cli(["roi", str(path), "--polygon", "0,0,0.5,0,0.5,1,0,1", "--out", str(out)]) == 0
    assert cli(["model", "info", str(out)]) == 0
    assert "include: 0.000,0.000 0.500,0.000" in capsys.readouterr().out
    assert cli(["roi", str(out), "--clear", "--in-place"]) == 0
    assert MDSSModel.load(out).roi is None
    assert MDSSModel.load(out.with_name("roi.mdss.bak")).roi is not None  # the backup
    assert cli(["roi", str(path), "--polygon", "0,0,1,1", "--out", str(tmp_path / "x.mdss")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 3 points" in err
    assert not (tmp_path / "x.mdss").exists()
    assert cli(["roi", str(path), "--polygon", "0,0,1,0,1,1", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_extra_good_folders_join_the_training_split(tiny_dataset, tmp_path):
    dataset = open_dataset(tiny_dataset)
    good = dataset.select("train")[0]
    folder = tmp_path / "marked" / "train" / "good"
    for kind, src in (("rgb", good.rgb_path), ("xyz", good.xyz_path)):
        (folder / kind).mkdir(parents=True)
        (folder / kind / f"000{src.suffix}").write_bytes(src.read_bytes())
    merged = with_extra_good(dataset, [tmp_path / "marked"])
    added = [r for r in merged if r.sample_id.startswith("extra-")]
    assert len(merged) == len(dataset) + 1 and len(added) == 1
    assert (
        added[0].split == "train" and added[0].label == 0 and added[0].key == "train/good/extra-000"
    )
    out = tmp_path / "extra.mdss"
    args = ["train", str(tiny_dataset), "--preset", "tiny", "--out", str(out)]
    assert cli([*args, "--extra-good", str(tmp_path / "marked")]) == 0
    plain = MDSSModel.fit(dataset, "tiny", device="cpu")
    trained = MDSSModel.load(out).training
    assert trained["n_train"] + trained["n_validation"] == (
        plain.training["n_train"] + plain.training["n_validation"] + 1
    )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        with_extra_good(dataset, [tmp_path / "empty"])
