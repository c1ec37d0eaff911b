"""`mdss bench` on toy sizes: the JSON layout, and the peer's bank growing with the train set."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from mdss_core.bench import BenchSettings, run_bench
from mdss_core.bench.floor import CONV_SHAPE, reference_conv
from mdss_core.bench.measure import interleaved_ms
from mdss_core.bench.peer import MemoryBankPeer, nearest_distance, point_features
from mdss_core.bench.table import format_table
from mdss_core.bench.workload import build_workload
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.pdn import PDN
from mdss_core.rgb.teacher import default_teacher


@pytest.fixture(scope="module")
def toy_result() -> dict:
    settings = BenchSettings.toy()
    return run_bench(settings, device="cpu")


def test_result_has_the_promised_keys_and_is_json(toy_result: dict) -> None:
    for key in ("end_to_end_ms", "floor_ms", "device", "scaling", "stages", "floor"):
        assert key in toy_result
    assert toy_result["device"] == "cpu"
    assert toy_result["end_to_end_ms"] > 0 and toy_result["floor_ms"] > 0
    assert [row["n_train"] for row in toy_result["scaling"]] == [2, 4]
    for row in toy_result["scaling"]:
        assert set(row) >= {"n_train", "mdss_ms", "peer_ms", "mdss_mem_mb", "peer_mem_mb"}
    stages = toy_result["stages"]["stages_ms"]
    assert set(stages) >= {"load", "preprocess", "rgb_branch", "geometry_branch", "fusion"}
    throughput = toy_result["throughput"]
    assert throughput["samples_per_s_pipelined"] > 0 and throughput["pipeline_workers"] == 0
    assert json.loads(json.dumps(toy_result)) == toy_result
    assert "scaling" in format_table(toy_result) and "pipelined" in format_table(toy_result)


def test_end_to_end_and_floor_come_from_one_interleaved_measurement(toy_result: dict) -> None:
    floor = toy_result["floor"]
    assert toy_result["end_to_end_ms"] == floor["end_to_end_ms"]
    ratio = floor["end_to_end_ms"] / floor["floor_ms"]
    assert floor["end_to_end_over_floor"] == pytest.approx(ratio, abs=0.01)
    assert floor["pairs"] == 2 * toy_result["settings"]["repeats"] + 1
    # The packed RGB weights used on CPU are counted in mdss's memory.
    row = toy_result["scaling"][0]
    assert row["mdss_packed_mb"] > 0
    assert row["mdss_mem_mb"] >= row["mdss_params_mb"] + row["mdss_packed_mb"]


def test_interleaved_timing_alternates_the_two_calls() -> None:
    calls: list[str] = []
    first_ms, second_ms = interleaved_ms(
        lambda: calls.append("a"), lambda: (calls.append("b"), time.sleep(0.002)), 3, "cpu"
    )
    assert calls == ["a", "b"] * 4  # one warm-up pair, then three timed pairs
    assert second_ms >= 2.0 > first_ms


def test_reference_conv_matches_a_plain_convolution() -> None:
    conv, flops = reference_conv("cpu")
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(CONV_SHAPE, generator=generator)
    w = torch.randn(CONV_SHAPE[1], CONV_SHAPE[1], 3, 3, generator=generator)
    expected = torch.nn.functional.conv2d(x, w, padding=1)
    torch.testing.assert_close(conv(), expected, rtol=1e-4, atol=1e-3)
    assert flops == 2 * CONV_SHAPE[1] * 9 * expected.numel()


def test_peer_bank_grows_with_training_set_and_mdss_does_not(toy_result: dict) -> None:
    small, large = toy_result["scaling"]
    assert large["peer_bank_mb"] > small["peer_bank_mb"]
    assert large["peer_point_bank_rows"] > small["peer_point_bank_rows"]
    assert large["mdss_params_mb"] == small["mdss_params_mb"]


def test_peer_scores_a_training_sample_lower_than_a_changed_one(tmp_path) -> None:
    work = build_workload(BenchSettings.toy(), tmp_path)
    teacher, _ = default_teacher("small", seed=0)
    channels = teacher.out_channels
    branch = RGBBranch(teacher, PDN("small"), torch.zeros(channels), torch.ones(channels))
    peer = MemoryBankPeer(branch).fit(work.train[:2])
    rows_one = len(MemoryBankPeer(branch).fit(work.train[:1]).point_bank)
    assert len(peer.point_bank) > rows_one
    seen = work.train[0]
    rgb_seen, sdf_seen = peer.predict_maps(seen)
    # A training sample is in the bank: its points are at distance 0 (exact k-d tree) and its
    # cells at ~0 (float32 cdist rounding), far below a colour-inverted copy's distances.
    assert float(sdf_seen.max()) < 1e-6
    inverted = replace(seen, rgb=255 - seen.rgb)
    rgb_changed, _ = peer.predict_maps(inverted)
    assert float(rgb_changed.max()) > 10 * float(rgb_seen.max())


def test_nearest_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    queries = torch.from_numpy(rng.random((50, 8), dtype=np.float32))
    bank = torch.from_numpy(rng.random((300, 8), dtype=np.float32))
    expected = torch.cdist(queries, bank).amin(1)
    assert torch.allclose(nearest_distance(queries, bank), expected)


def test_point_features_flat_plane_has_camera_facing_normal() -> None:
    xs, ys = np.meshgrid(np.linspace(0, 0.01, 20), np.linspace(0, 0.01, 20))
    plane = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 0.6)], axis=1)
    feats = point_features(plane)
    assert np.allclose(feats[:, 2], -1.0, atol=1e-4)  # faces the camera at the origin
    assert np.all(feats[:, 3] < 1e-4)  # no curvature on a plane
