"""DM-GRD + SDF: synthesis is deterministic with non-empty masks; the model trains on tiny
synthetic data, scores with the top-k image score and round-trips through the model file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdss_core.config import get_preset
from mdss_core.dmgrd.network import MemoryBanks, sinkhorn_distance
from mdss_core.dmgrd.synthesis import perlin_mask, synthesize, texture_bank
from mdss_core.fusion import top_mean
from mdss_core.io import open_dataset
from mdss_core.model import MDSSModel


@pytest.fixture(scope="module")
def dmgrd_model(tiny_dataset):
    return MDSSModel.fit(open_dataset(tiny_dataset), get_preset("tiny", "dmgrd"), device="cpu")


def _normal_image(size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    image = np.full((size, size, 3), 120, np.uint8)
    region = np.zeros((size, size), bool)
    region[8:56, 8:56] = True
    return image, region


def test_synthesis_is_deterministic_under_a_seed_and_masks_are_not_empty():
    image, region = _normal_image()
    textures = texture_bank(2, 64, seed=0)
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        runs.append([synthesize(image, region, textures, rng) for _ in range(5)])
    for (a_img, a_mask), (b_img, b_mask) in zip(*runs, strict=True):
        np.testing.assert_array_equal(a_img, b_img)
        np.testing.assert_array_equal(a_mask, b_mask)
        assert a_mask.any() and not (a_mask & ~region).any()
        assert (a_img[a_mask] != image[a_mask]).any()  # the anomaly changes the pixels
        assert (a_img[~a_mask] == image[~a_mask]).all()  # and nothing else
    other = synthesize(image, region, textures, np.random.default_rng(8))
    assert not np.array_equal(other[1], runs[0][0][1])


def test_perlin_mask_falls_back_to_a_disc_inside_a_tiny_region():
    region = np.zeros((64, 64), bool)
    region[30:33, 30:33] = True
    mask = perlin_mask(64, region, np.random.default_rng(0), threshold=0.99)
    assert mask.any() and not (mask & ~region).any()


def test_memory_picks_the_closest_stored_map():
    bank = MemoryBanks((2, 2, 2), size=16, count=3)
    stored = [torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, s, s) for s in (4, 2, 1)]
    bank.store("normal", stored)
    query = [torch.full((1, 2, s, s), 1.1) for s in (4, 2, 1)]
    diffs = bank.differences(query, "normal")
    assert all(torch.allclose(d, torch.full_like(d, 0.01)) for d in diffs)  # closest: 1.0


def test_sinkhorn_distance_is_small_for_equal_sets_and_larger_for_different():
    torch.manual_seed(0)
    a = torch.randn(16, 8)
    assert float(sinkhorn_distance(a, a, eps=0.05)) < float(sinkhorn_distance(a, -a, eps=0.05))


def test_top_mean():
    values = np.arange(100, dtype=np.float32)
    assert top_mean(values, 10) == pytest.approx(94.5)
    assert top_mean(values, 0) == 99.0


def test_dmgrd_trains_scores_and_round_trips(dmgrd_model, tiny_dataset, tmp_path):
    assert dmgrd_model.config.method == "dmgrd"
    assert dmgrd_model.calibration.top_k == 10
    sample = next(r for r in open_dataset(tiny_dataset) if r.split == "test").load()
    first = dmgrd_model.predict(sample)
    assert np.isfinite(first.score_fused) and first.point_map.any()
    loaded = MDSSModel.load(dmgrd_model.save(tmp_path / "d.mdss"), device="cpu")
    second = loaded.predict(sample)
    np.testing.assert_array_equal(first.fused_map, second.fused_map)
    assert first.score_fused == second.score_fused
