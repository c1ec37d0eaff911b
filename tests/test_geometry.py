"""Geometry branch: SDF network shapes, patch normalisation, Neural-Pull training, scoring."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from torch import nn

from mdss_core.config import get_preset
from mdss_core.errors import Cancelled
from mdss_core.geometry import (
    SDFConfig,
    build_sdf_net,
    patch_frame,
    point_scores,
    scores_to_map,
    train_sdf,
)
from mdss_core.geometry.train import neighbour_distance, sample_queries
from mdss_core.preprocess.patches import make_patches


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    # These tensors are tiny: a second thread only adds synchronisation (4x slower measured on a
    # busy 2-core machine), so run single-threaded and restore the setting afterwards.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_config(**overrides) -> SDFConfig:
    settings = dict(
        points_per_patch=64,
        coverage=3.0,
        encoder_channels=(8, 16, 32),
        encoder_head=16,
        latent=8,
        hidden=16,
        decoder_layers=2,
        queries_per_patch=32,
        batch_size=8,
        steps=20,
        lr=1e-3,
        sigma_neighbor=8,
    )
    settings.update(overrides)
    return SDFConfig(**settings)


def wavy_surface(rng: np.random.Generator, side: int = 20, bump: float = 0.0) -> np.ndarray:
    """Organised-cloud-like grid (0.4 mm spacing) on a gently waving, tilted plane, in metres."""
    u = (np.arange(side) - side / 2) * 4e-4
    x, y = np.meshgrid(u, u, indexing="ij")
    phase = rng.uniform(0, 2 * np.pi)
    z = 0.65 + 0.01 * x + 5e-4 * np.sin(2 * np.pi * x / 0.02 + phase)
    z = z + bump * np.exp(-(x**2 + y**2) / (2 * 0.001**2))
    return np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)


def losses_of(clouds, config) -> tuple[list[float], nn.Module]:
    losses: list[float] = []

    def collect(p):
        if "loss" in p.metrics:
            losses.append(p.metrics["loss"])

    net = train_sdf(clouds, config, progress=collect)
    return losses, net


# --- network -------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_encode_decode_shapes(norm: str) -> None:
    config = tiny_config(norm=norm)
    net = build_sdf_net(config).eval()
    patches = torch.randn(3, config.points_per_patch, 3)
    latent = net.encode(patches)
    assert latent.shape == (3, config.latent)
    assert net.decode(latent, torch.randn(3, 5, 3)).shape == (3, 5)


def test_decoder_uses_geometric_initialisation() -> None:
    hidden = 64
    decoder = build_sdf_net(tiny_config(hidden=hidden)).decoder
    assert decoder.out.bias.item() == -0.5
    weight = decoder.out.weight.detach()
    assert weight.mean().item() == pytest.approx(2 * np.sqrt(np.pi) / np.sqrt(hidden), rel=1e-4)
    assert weight.std().item() < 1e-5
    hidden_weight = decoder.hidden_layers[0].weight.detach()  # weight-normalised, same values
    assert hidden_weight.std().item() == pytest.approx(np.sqrt(2 / hidden), rel=0.1)
    assert hasattr(decoder.hidden_layers[0], "parametrizations")


def test_patch_frame_round_trip_and_normalisation() -> None:
    gen = torch.Generator().manual_seed(1)
    patches = torch.rand(4, 50, 3, generator=gen) * torch.tensor([2.0, 0.5, 0.1]) + 3.0
    queries = patches[:, :7] + 0.01
    frame = patch_frame(patches)
    normalised = frame.apply(patches)
    torch.testing.assert_close(normalised.mean(dim=1), torch.zeros(4, 3), atol=1e-5, rtol=0)
    extent = (normalised.amax(dim=1) - normalised.amin(dim=1)).amax(dim=1)
    torch.testing.assert_close(extent, torch.ones(4))
    # Queries get exactly the transform of their patch.
    torch.testing.assert_close(frame.apply(queries), normalised[:, :7] + 0.01 * frame.scale)
    torch.testing.assert_close(frame.invert(normalised), patches)


def test_patch_frame_survives_degenerate_patch() -> None:
    frame = patch_frame(torch.ones(1, 10, 3))
    assert torch.isfinite(frame.apply(torch.ones(1, 10, 3))).all()


def test_neighbour_distance_counts_other_points() -> None:
    line = torch.arange(6, dtype=torch.float32).view(1, 6, 1).expand(1, 6, 3) * torch.tensor(
        [1.0, 0.0, 0.0]
    )
    # From point 0 the 2nd nearest other point is at distance 2; from point 2 it is at 1.
    assert neighbour_distance(line, 2)[0].tolist() == [2.0, 1.0, 1.0, 1.0, 1.0, 2.0]


def test_sample_queries_targets_are_nearest_clean_points() -> None:
    config = tiny_config()
    gen = torch.Generator().manual_seed(0)
    patches = torch.rand(2, 64, 3, generator=gen)
    sigma = torch.full((2, 64), 0.05)
    queries, targets = sample_queries(patches, sigma, 40, config, gen)
    assert queries.shape == targets.shape == (2, 40, 3)
    brute = torch.cdist(queries, patches).amin(dim=2)
    torch.testing.assert_close((queries - targets).norm(dim=-1), brute)
    # Noise is on the scale of sigma: never zero, never far beyond it.
    offset = brute.mean().item()
    assert 0.0 < offset < 0.2


# --- config --------------------------------------------------------------------------------


def test_config_json_round_trip_and_validation() -> None:
    for config in (get_preset("paper").sdf, get_preset("fast").sdf, tiny_config()):
        restored = SDFConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert restored == config
    with pytest.raises(ValueError, match="norm"):
        tiny_config(norm="layer")
    with pytest.raises(ValueError, match="unknown keys"):
        SDFConfig.from_dict({"hiden": 3})
    with pytest.raises(ValueError, match="sigma_neighbor"):
        tiny_config(sigma_neighbor=64)


# --- training ------------------------------------------------------------------------------


def test_neural_pull_loss_decreases_on_a_plane() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-0.01, 0.01, size=(400, 2))
    plane = np.column_stack([xy, 0.65 + 0.2 * xy[:, 0]]).astype(np.float32)
    losses, net = losses_of([plane], tiny_config(steps=40))
    assert len(losses) == 40
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert not net.training


def test_training_is_deterministic_for_a_seed() -> None:
    clouds = [wavy_surface(np.random.default_rng(i), side=12) for i in range(2)]
    config = tiny_config(steps=5)
    first, net_a = losses_of(clouds, config)
    second, net_b = losses_of(clouds, config)
    assert first == second
    for key, value in net_a.state_dict().items():
        assert torch.equal(value, net_b.state_dict()[key]), key
    other, _ = losses_of(clouds, tiny_config(steps=5, seed=1))
    assert other != first


def test_cancel_before_and_during_training() -> None:
    cloud = wavy_surface(np.random.default_rng(0), side=12)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        train_sdf([cloud], tiny_config(), cancel=stop)

    stop = threading.Event()
    steps_seen: list[int] = []

    def cancel_after_three(p):
        if "loss" in p.metrics:
            steps_seen.append(p.step)
            if p.step == 3:
                stop.set()

    with pytest.raises(Cancelled):
        train_sdf([cloud], tiny_config(steps=50), progress=cancel_after_three, cancel=stop)
    assert steps_seen == [1, 2, 3]


def test_group_norm_network_is_identical_in_train_and_eval_mode() -> None:
    net = build_sdf_net(tiny_config(norm="group"))
    patches = torch.randn(2, 64, 3)
    train_latent = net.train().encode(patches)
    torch.testing.assert_close(net.eval().encode(patches), train_latent)


# --- inference -----------------------------------------------------------------------------


class StubNet(nn.Module):
    """|f| = |normalised x + 0.25|: the same point gets a different score in each patch."""

    def encode(self, patches: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(patches), 1)

    def decode(self, latent: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        return queries[..., 0] + 0.25


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_point_scores_keep_the_minimum_over_overlapping_patches(batch_size: int) -> None:
    # Six points on the x axis; point 5 lies in no patch.
    points = np.zeros((6, 3), dtype=np.float32)
    points[:, 0] = np.arange(6)
    patches = np.array([[0, 1, 2], [2, 3, 4], [1, 2, 3]])
    # Normalised x per patch is (x - mean) / 2: patch A gives point 2 the score |0.5 + 0.25|,
    # patches B and C give it 0.25; point 3 gets 0.25 in B and 0.75 in C (processed last).
    scores = point_scores(StubNet(), points, patches, batch_size=batch_size)
    np.testing.assert_allclose(scores, [0.25, 0.25, 0.25, 0.25, 0.75, 0.0])
    assert scores.dtype == np.float32


def test_point_scores_are_deterministic_and_restore_mode() -> None:
    config = tiny_config(norm="batch")
    net = build_sdf_net(config).train()
    cloud = wavy_surface(np.random.default_rng(0), side=12)
    patches = np.stack([np.arange(64), np.arange(64, 128), np.arange(40, 104)])
    first = point_scores(net, cloud, patches, batch_size=1)
    second = point_scores(net, cloud, patches, batch_size=3)
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-7)
    assert net.training
    assert (first[:128] > 0).all() and (first[128:] == 0).all()


def test_point_scores_rejects_bad_indices() -> None:
    with pytest.raises(ValueError, match="outside"):
        point_scores(StubNet(), np.zeros((3, 3), np.float32), np.array([[0, 1, 3]]))


def test_scores_to_map_scatter_and_blur() -> None:
    size = 32
    pixel_index = np.array([5 * size + 7, 16 * size + 16])
    scores = np.array([2.0, 1.0], dtype=np.float32)
    raw = scores_to_map(scores, pixel_index, size, sigma=0)
    assert raw.shape == (size, size) and raw.dtype == np.float32
    assert raw[5, 7] == 2.0 and raw[16, 16] == 1.0
    assert np.count_nonzero(raw) == 2
    blurred = scores_to_map(scores, pixel_index, size, sigma=2.0)
    assert blurred.shape == (size, size) and blurred.dtype == np.float32
    assert blurred[16, 16] < 1.0 and blurred[16, 18] > 0
    # The blur spreads the score but keeps its mass (away from the border).
    single = scores_to_map(scores[1:], pixel_index[1:], size, sigma=2.0)
    assert single.sum() == pytest.approx(1.0, rel=1e-3)
    np.testing.assert_allclose(single, single.T, atol=1e-7)


def test_scores_to_map_rejects_mismatched_input() -> None:
    with pytest.raises(ValueError, match="pixel indices"):
        scores_to_map(np.ones(3), np.arange(2), 8)
    with pytest.raises(ValueError, match="outside"):
        scores_to_map(np.ones(1), np.array([64]), 8)


def test_bump_scores_higher_than_the_smooth_surface() -> None:
    # The method's assumption: trained on smooth normal surfaces only, points of a bump get a
    # larger |sdf| than points of the unchanged surface around it.
    rng = np.random.default_rng(0)
    clouds = [wavy_surface(rng, side=24) for _ in range(3)]
    config = tiny_config(
        points_per_patch=100,
        sigma_neighbor=10,
        hidden=32,
        decoder_layers=2,
        steps=150,
        lr=3e-3,
        lr_min=1e-4,
    )
    _, net = losses_of(clouds, config)
    test = wavy_surface(np.random.default_rng(9), side=24, bump=1.5e-3)
    smooth = wavy_surface(np.random.default_rng(9), side=24)
    on_bump = np.abs(test[:, 2] - smooth[:, 2]) > 3e-4
    scores = point_scores(net, test, make_patches(test, k=100, coverage=4.0))
    assert scores[on_bump].mean() > 1.5 * scores[~on_bump].mean()
