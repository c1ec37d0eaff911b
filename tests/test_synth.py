"""Synthetic dataset generator: layout, data validity, defect semantics, determinism, safety."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from mdss_core.cli.main import main as cli_main
from mdss_core.errors import Cancelled, DataError
from mdss_core.synth import (
    CATEGORIES,
    DEFECT_KINDS,
    generate_dataset,
    render_sample,
    split_test_counts,
)

SIZE = 64


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_constants_describe_every_kind():
    assert len(CATEGORIES) >= 3
    assert set(DEFECT_KINDS.values()) == {"colour", "geometry", "both"}


def test_test_split_counts_are_spread_evenly():
    counts = split_test_counts(10, ["a", "b", "c"])
    assert counts == {"good": 3, "a": 3, "b": 2, "c": 2}
    assert sum(split_test_counts(41, list(DEFECT_KINDS)).values()) == 41


def test_layout_dtypes_and_shapes(tmp_path):
    roots = generate_dataset(tmp_path, ["ring"], n_train=2, n_val=1, n_test=8, size=SIZE, seed=3)
    root = tmp_path / "ring"
    assert roots == [root]
    for split, n in (("train", 2), ("validation", 1)):
        folder = root / split / "good"
        assert sorted(p.name for p in folder.iterdir()) == ["rgb", "xyz"]  # no gt folder
        assert sorted(p.name for p in (folder / "rgb").iterdir()) == [
            f"{i:03d}.png" for i in range(n)
        ]
    meta = json.loads((root / "synth.json").read_text())
    assert meta["seed"] == 3 and meta["image_size"] == [SIZE, SIZE]
    assert {d["name"]: d["kind"] for d in meta["defects"]} == DEFECT_KINDS
    test_folders = sorted(p.name for p in (root / "test").iterdir())
    assert test_folders == sorted(["good", *DEFECT_KINDS])
    for name in test_folders:
        folder = root / "test" / name
        bgr = cv2.imread(str(folder / "rgb" / "000.png"), cv2.IMREAD_UNCHANGED)
        xyz = tifffile.imread(folder / "xyz" / "000.tiff")
        gt = cv2.imread(str(folder / "gt" / "000.png"), cv2.IMREAD_UNCHANGED)
        assert bgr.dtype == np.uint8 and bgr.shape == (SIZE, SIZE, 3)
        assert xyz.dtype == np.float32 and xyz.shape == (SIZE, SIZE, 3)
        assert gt.dtype == np.uint8 and gt.shape == (SIZE, SIZE)
        assert set(np.unique(gt)) <= {0, 255}
        assert (gt.any()) == (name != "good")
        # The file holds exactly the rendered sample, channels in RGB order after reading.
        sample = render_sample("ring", name, 0, size=SIZE, seed=3)
        np.testing.assert_array_equal(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), sample.rgb)
        np.testing.assert_array_equal(xyz, sample.xyz)


@pytest.mark.parametrize("category", CATEGORIES)
def test_points_are_metric_and_missing_points_exactly_zero(category):
    xyz = render_sample(category, "good", 0, size=96, seed=0, split="train").xyz
    missing = np.all(xyz == 0, axis=2)
    assert 0 < missing.mean() < 0.5
    # A point is either complete or exactly (0, 0, 0): never partially zero.
    assert not np.any((xyz == 0).any(axis=2) & ~missing)
    z = xyz[..., 2][~missing]
    assert z.min() > 0.6 and z.max() < 0.7
    assert 0.08 < np.ptp(xyz[..., 0][~missing]) < 0.12  # the frame spans ~10 cm
    # The part stands out of the plane by millimetres to centimetres.
    assert 0.003 < np.percentile(z, 99.9) - z.min() < 0.04


@pytest.mark.parametrize("category", CATEGORIES)
def test_gt_marks_every_defect_and_nothing_on_good(category):
    for index in range(2):
        assert not render_sample(category, "good", index, size=SIZE).gt.any()
        for defect in DEFECT_KINDS:
            sample = render_sample(category, defect, index, size=SIZE)
            assert sample.gt.any(), (category, defect, index)
            assert sample.gt.mean() < 0.05, (category, defect, index)


@pytest.mark.parametrize("category", CATEGORIES)
def test_defects_change_only_their_modality(category):
    for defect, kind in DEFECT_KINDS.items():
        planted = render_sample(category, defect, 1, size=SIZE, seed=5)
        clean = render_sample(category, defect, 1, size=SIZE, seed=5, plant=False)
        assert clean.defect is None and not clean.gt.any()
        albedo_same = np.array_equal(planted.albedo, clean.albedo)
        xyz_same = np.array_equal(planted.xyz, clean.xyz)
        assert albedo_same == (kind == "geometry"), (category, defect)
        assert xyz_same == (kind == "colour"), (category, defect)
        assert not np.array_equal(planted.rgb, clean.rgb), (category, defect)
        # Outside the defect (and its 2-pixel blur margin) the image is untouched.
        far = cv2.dilate(planted.gt.astype(np.uint8), np.ones((5, 5), np.uint8)) == 0
        np.testing.assert_array_equal(planted.xyz[far], clean.xyz[far])


def test_same_seed_same_bytes_and_counts_do_not_reshuffle(tmp_path):
    kwargs = {"categories": ["disc"], "n_val": 0, "n_test": 3, "size": 48, "seed": 7}
    generate_dataset(tmp_path / "a", n_train=2, **kwargs)
    generate_dataset(tmp_path / "b", n_train=2, **kwargs)
    generate_dataset(tmp_path / "c", n_train=1, **kwargs)
    a, b, c = (_files(tmp_path / x / "disc") for x in "abc")
    assert a == b
    assert c["train/good/rgb/000.png"] == a["train/good/rgb/000.png"]
    assert c["test/good/xyz/000.tiff"] == a["test/good/xyz/000.tiff"]
    other = render_sample("disc", "good", 0, size=48, seed=8, split="train")
    assert not np.array_equal(
        other.xyz, tifffile.imread(tmp_path / "a/disc/train/good/xyz/000.tiff")
    )


def test_refuses_to_overwrite_unless_asked(tmp_path):
    target = tmp_path / "bolt"
    target.mkdir()
    (target / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="not empty"):
        generate_dataset(tmp_path, ["bolt"], n_train=1, n_val=0, n_test=0, size=32)
    assert (target / "mine.txt").read_text() == "user data"
    generate_dataset(tmp_path, ["bolt"], n_train=1, n_val=0, n_test=0, size=32, overwrite=True)
    assert not (target / "mine.txt").exists()
    assert (target / "synth.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["bolt"]  # no staging folders left behind


def test_cancel_leaves_no_category_behind(tmp_path):
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.step)
        if p.step == 2:
            cancel.set()

    with pytest.raises(Cancelled):
        generate_dataset(
            tmp_path,
            ["ring"],
            n_train=4,
            n_val=0,
            n_test=0,
            size=32,
            progress=progress,
            cancel=cancel,
        )
    assert seen == [1, 2]
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="unknown category 'cog'"):
        generate_dataset(tmp_path, ["cog"])
    with pytest.raises(DataError, match="image size"):
        generate_dataset(tmp_path, ["ring"], size=8)


def test_cli_writes_and_reports(tmp_path, capsys):
    out = tmp_path / "data"
    args = ["synth", "--out", str(out), "--categories", "disc", "--train", "1", "--val", "1"]
    assert cli_main([*args, "--test", "2", "--size", "40", "--seed", "2"]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "disc" in printed
    assert (out / "disc" / "test" / "good" / "gt" / "000.png").is_file()
    assert cli_main([*args, "--test", "2", "--size", "40"]) == 2  # refuses: folder not empty
    assert "not empty" in capsys.readouterr().err
