"""Data layer: layouts, validation errors that name the file, real MVTec 3D-AD samples."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from mdss_core.errors import DataError
from mdss_core.io import Sample, open_dataset, read_rgb, read_xyz


def write_pair(folder: Path, stem: str, size=(16, 12), gt: bool | None = None) -> None:
    h, w = size
    rng = np.random.default_rng(0)
    (folder / "rgb").mkdir(parents=True, exist_ok=True)
    (folder / "xyz").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "rgb" / f"{stem}.png"), rng.integers(0, 255, (h, w, 3), np.uint8))
    xyz = rng.normal(size=(h, w, 3)).astype(np.float32)
    xyz[0, 0] = 0
    tifffile.imwrite(folder / "xyz" / f"{stem}.tiff", xyz)
    if gt is not None:
        (folder / "gt").mkdir(exist_ok=True)
        mask = np.zeros((h, w), np.uint8)
        if gt:
            mask[2:5, 3:7] = 253  # a class id, as in the real data
        cv2.imwrite(str(folder / "gt" / f"{stem}.png"), mask)


@pytest.fixture()
def category(tmp_path: Path) -> Path:
    root = tmp_path / "data" / "widget"
    write_pair(root / "train" / "good", "000")
    write_pair(root / "train" / "good", "001")
    write_pair(root / "validation" / "good", "000")
    write_pair(root / "test" / "good", "000", gt=False)
    write_pair(root / "test" / "hole", "000", gt=True)
    return root


def test_mvtec_layout_from_root_category_and_split(category: Path) -> None:
    by_root = open_dataset(category.parent)
    by_category = open_dataset(category)
    assert len(by_root) == len(by_category) == 5
    assert by_root.category == "widget"
    assert [r.key for r in by_root.select(split="test")] == ["test/good/000", "test/hole/000"]
    only_test = open_dataset(category / "test")
    assert len(only_test) == 2 and only_test.category == "widget"
    assert len(open_dataset(category, split="train")) == 2


def test_loaded_sample_types_and_gt_class_ids(category: Path) -> None:
    ref = open_dataset(category).select(split="test", defect="hole")[0]
    sample = ref.load()
    assert sample.rgb.dtype == np.uint8 and sample.rgb.shape == (16, 12, 3)
    assert sample.xyz.dtype == np.float32 and sample.xyz.shape == (16, 12, 3)
    assert sample.gt is not None and sample.gt.dtype == bool and sample.gt.sum() == 12
    assert sample.label == 1 and not sample.valid_mask[0, 0]
    train = open_dataset(category).select(split="train")[0]
    assert train.gt_path is None and train.label == 0
    assert train.load().gt is not None and not train.load().gt.any()  # good → empty mask


def test_flat_folder_of_pairs_and_sample_folder(tmp_path: Path) -> None:
    write_pair(tmp_path / "s", "a")
    flat = tmp_path / "flat"
    flat.mkdir()
    for suffix in (".png", ".tiff"):
        (tmp_path / "s" / ("rgb" if suffix == ".png" else "xyz") / f"a{suffix}").rename(
            flat / f"007{suffix}"
        )
    index = open_dataset(flat)
    assert [r.sample_id for r in index] == ["007"] and index[0].label == -1
    write_pair(tmp_path / "capture", "001", gt=True)
    assert open_dataset(tmp_path / "capture")[0].load().label == 1


def test_missing_partner_is_an_error_naming_the_file(category: Path) -> None:
    (category / "test" / "hole" / "xyz" / "000.tiff").unlink()
    with pytest.raises(DataError, match=r"000\.png: no partner point cloud"):
        open_dataset(category)
    lenient = open_dataset(category, strict=False)
    assert len(lenient) == 4 and "000.png" in lenient.problems[0]


def test_size_mismatch_channels_dtype_truncation(tmp_path: Path) -> None:
    write_pair(tmp_path / "s", "000", size=(16, 12))
    tifffile.imwrite(tmp_path / "s" / "xyz" / "000.tiff", np.ones((8, 8, 3), np.float32))
    with pytest.raises(DataError, match=r"000\.tiff: size 8x8 does not match"):
        open_dataset(tmp_path / "s")[0].load()
    two = tmp_path / "two.tiff"
    tifffile.imwrite(two, np.ones((8, 8, 2), np.float32))
    with pytest.raises(DataError, match=r"two\.tiff: expected an organized cloud"):
        read_xyz(two)
    ints = tmp_path / "ints.tiff"
    tifffile.imwrite(ints, np.ones((8, 8, 3), np.uint16))
    with pytest.raises(DataError, match="expected float"):
        read_xyz(ints)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"broken\.png: cannot read image"):
        read_rgb(broken)
    bad_tiff = tmp_path / "bad.tiff"
    bad_tiff.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match=r"bad\.tiff: cannot read TIFF"):
        read_xyz(bad_tiff)
    gray16 = tmp_path / "deep.png"
    cv2.imwrite(str(gray16), np.ones((8, 8, 3), np.uint16) * 300)
    with pytest.raises(DataError, match="8-bit"):
        read_rgb(gray16)


def test_nan_points_become_missing_with_one_warning(tmp_path: Path, caplog) -> None:
    xyz = np.ones((6, 6, 3), np.float32)
    xyz[1, 1, 2] = np.nan
    xyz[2, 2, 0] = np.inf
    path = tmp_path / "nan.tiff"
    tifffile.imwrite(path, xyz)
    with caplog.at_level(logging.WARNING):
        loaded = read_xyz(path)
    assert not loaded[1, 1].any() and not loaded[2, 2].any() and loaded[0, 0].all()
    warnings = [r for r in caplog.records if "NaN/inf" in r.getMessage()]
    assert len(warnings) == 1 and "2 points" in warnings[0].getMessage()


def test_all_empty_cloud_and_missing_or_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty.tiff"
    tifffile.imwrite(empty, np.zeros((6, 6, 3), np.float32))
    with pytest.raises(DataError, match="empty"):
        read_xyz(empty)
    with pytest.raises(DataError, match="folder not found"):
        open_dataset(tmp_path / "nope")
    (tmp_path / "void").mkdir()
    with pytest.raises(DataError, match="no samples found"):
        open_dataset(tmp_path / "void")


def test_from_arrays_validates() -> None:
    with pytest.raises(DataError):
        Sample.from_arrays(np.zeros((4, 4, 3), np.float32), np.ones((4, 4, 3), np.float32))
    sample = Sample.from_arrays(np.zeros((4, 4, 3), np.uint8), np.ones((4, 4, 3), np.float32))
    assert sample.shape == (4, 4)


@pytest.mark.realdata
def test_real_mvtec_mini_subset(real_data_root: Path) -> None:
    index = open_dataset(real_data_root)
    assert len(index.select(split="train")) == 12
    assert len(index.select(split="validation")) == 4
    test = index.select(split="test")
    assert len(test) == 11 and set(test.defects) == {"bent", "cut", "good", "hole", "thread"}
    sample = test.select(defect="bent")[0].load()
    assert sample.shape == (400, 400) and sample.label == 1 and sample.gt.any()
    assert 0.5 < sample.valid_mask.mean() < 0.7
    good = test.select(defect="good")[0].load()
    assert good.label == 0 and not good.gt.any()
