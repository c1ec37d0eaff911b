"""CRD: trains on tiny synthetic data, round-trips through the model file, plugs into the
same prediction path as MDSS, and refuses a model of an unknown method in one line."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from mdss_core.config import get_preset
from mdss_core.crd.config import CRDConfig
from mdss_core.crd.inputs import depth_image
from mdss_core.crd.network import CRDBranch, rd_loss, rd_map
from mdss_core.errors import ConfigError, MDSSError, ModelFileError
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel


@pytest.fixture(scope="module")
def crd_model(tiny_dataset):
    return MDSSModel.fit(open_dataset(tiny_dataset), get_preset("tiny", "crd"), device="cpu")


def test_crd_trains_and_records_its_method(crd_model):
    assert crd_model.config.method == "crd"
    assert crd_model.info()["method"] == "crd"
    assert crd_model.training["n_train"] > 0
    assert crd_model.calibration.rule == "zmax"
    assert crd_model.image_threshold > crd_model.calibration.rgb.mean  # a z-score sum


def test_crd_predicts_like_any_detector(crd_model, tiny_dataset):
    refs = [r for r in open_dataset(tiny_dataset) if r.split == "test"][:2]
    prediction = crd_model.predict(refs[0].load())
    h, w = prediction.shape
    assert prediction.fused_map.shape == (h, w) == prediction.map_3d.shape
    assert np.isfinite(prediction.score_fused)
    # CRD's rule: the image score is the fused map's maximum at model size, so it is at least
    # what the (finer) full-size map shows nearly everywhere.
    assert prediction.score_fused == pytest.approx(
        float(prediction.fused_map.max()), rel=0.2, abs=0.5
    )
    # The cloud is coloured by the 3D branch's map at the object's points only.
    assert (prediction.point_map[~prediction.object_mask] == 0).all()


def test_crd_model_file_round_trips_to_identical_maps(crd_model, tiny_dataset, tmp_path):
    sample = next(r for r in open_dataset(tiny_dataset) if r.split == "test").load()
    path = crd_model.save(tmp_path / "crd.mdss")
    loaded = MDSSModel.load(path, device="cpu")
    assert loaded.config == crd_model.config
    a, b = crd_model.predict(sample), loaded.predict(sample)
    np.testing.assert_array_equal(a.fused_map, b.fused_map)
    assert a.score_fused == b.score_fused


def test_unknown_method_is_refused_in_one_line(crd_model, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = crd_model.save(tmp_path / "crd.mdss")
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    config = json.loads(metadata["config"])
    config["method"] = "dreamnet"
    metadata["config"] = json.dumps(config)
    forged = tmp_path / "forged.mdss"
    save_file(load_file(str(path)), str(forged), metadata=metadata)
    with pytest.raises(ModelFileError) as info:
        MDSSModel.load(forged)
    message = str(info.value)
    assert "unknown method 'dreamnet'" in message and "\n" not in message
    assert str(forged) in message or forged.name in message


def test_unknown_method_or_preset_names_are_one_line_errors():
    with pytest.raises(MDSSError, match="unknown method"):
        get_preset("cpu", "dreamnet")
    with pytest.raises(MDSSError, match="unknown preset 'fast' for method crd"):
        get_preset("fast", "crd")


def test_deeper_blocks_of_the_cpu_preset_train_and_predict(tiny_dataset):
    """Blocks 6 / 13 / 16 (the cpu preset's, at 512 px there) on tiny data: full-size maps."""
    cpu = get_preset("cpu", "crd")
    assert cpu.crd.blocks == (6, 13, 16) and cpu.preprocess.size == 512
    tiny = get_preset("tiny", "crd")
    config = replace(tiny, crd=replace(tiny.crd, blocks=cpu.crd.blocks))
    dataset = open_dataset(tiny_dataset)
    model = MDSSModel.fit(dataset, config, device="cpu")
    sample = next(r for r in dataset if r.split == "test").load()
    prediction = model.predict(sample)
    assert prediction.fused_map.shape == sample.shape
    assert np.isfinite(prediction.fused_map).all() and np.isfinite(prediction.score_fused)


@pytest.mark.parametrize("blocks", [(3, 6), (3, 6, 14), (6, 13, 18), (13, 6, 3)])
def test_blocks_that_do_not_double_the_stride_are_refused(blocks):
    with pytest.raises(ConfigError, match="crd.blocks"):
        CRDConfig(blocks=blocks)


def test_branch_learns_to_reconstruct_teacher_features():
    torch.manual_seed(0)
    channels = (24, 32, 96)
    own = [torch.randn(2, c, s, s) for c, s in zip(channels, (16, 8, 4), strict=True)]
    other = [torch.randn_like(f) for f in own]
    branch = CRDBranch(channels, 32, crossmodal=True)
    outputs = branch.outputs(own, other)
    assert set(outputs) == {"plain", "filtered", "amplified", "blended"}
    opt = torch.optim.Adam(branch.parameters(), lr=0.005, betas=(0.5, 0.999))
    first = None
    for _ in range(40):
        opt.zero_grad()
        loss = torch.stack([rd_loss(own, o) for o in branch.outputs(own, other).values()]).sum()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < 0.5 * first
    with torch.no_grad():
        maps = rd_map(own, branch.students(own, other), 64)
    assert maps.shape == (2, 64, 64) and float(maps.min()) >= -1e-5


def test_depth_image_scales_inside_the_object_and_fills_holes():
    xyz = np.zeros((32, 32, 3), np.float32)
    xyz[..., 2] = np.linspace(1.0, 2.0, 32)[None, :]
    valid = np.zeros((32, 32), bool)
    valid[8:24, 8:24] = True
    valid[15, 15] = False  # a hole inside the object
    region = np.zeros_like(valid)
    region[6:26, 6:26] = True
    image = depth_image(xyz, valid, region)
    assert image.shape == (32, 32, 3) and (image[..., 0] == image[..., 2]).all()
    inside = image[..., 0][valid]
    assert inside.max() == 255 and inside.min() == 1  # near = bright, full range inside
    assert image[15, 15, 0] > 0  # the hole is filled
    assert (image[~region] == 0).all()


def test_bench_compares_models_of_different_detectors(
    crd_model, tiny_model, tiny_dataset, tmp_path
):
    from mdss_core.bench.models import compare_models, format_models

    paths = [crd_model.save(tmp_path / "crd.mdss"), tiny_model.save(tmp_path / "mdss.mdss")]
    result = compare_models(paths, tiny_dataset, samples=2, rounds=2)
    rows = result["models"]
    assert [rows[str(p)]["method"] for p in paths] == ["crd", "mdss"]
    for row in rows.values():
        assert 0 < row["ms_min"] <= row["ms_median"] <= row["ms_max"]
        assert row["file_mb"] > 0 and "branches" in row["stages"]
    table = format_models(result)
    assert "crd.mdss" in table and "mdss.mdss" in table


def test_models_trained_on_the_same_samples_share_the_training_set_fingerprint(
    crd_model, tiny_model, tiny_dataset
):
    from mdss_core.api import model_identity

    stamp = crd_model.training["training_set"]
    assert len(stamp) == 12 and stamp == tiny_model.training["training_set"]
    assert f"samples {stamp}" in model_identity(crd_model)[1]
    assert "crd" in model_identity(crd_model)[0]


def test_options_of_another_detector_are_refused_in_one_line(tiny_dataset, tmp_path, capsys):
    from mdss_core.cli.main import main

    out = tmp_path / "m.mdss"
    args = ["train", str(tiny_dataset), "--out", str(out), "--preset", "tiny"]
    assert main([*args, "--method", "crd", "--teacher", "distilled"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "mdss: error: --teacher: not an option of --method crd"
    assert main([*args, "--epochs", "3", "--input-3d", "depth"]) == 2
    assert "--epochs, --input-3d: not an option of --method mdss" in capsys.readouterr().err
    assert not out.exists()
