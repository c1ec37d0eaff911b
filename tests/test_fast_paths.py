"""The CPU fast paths compute what the plain modules compute, follow weight changes, and step
aside when switched off or when this torch build cannot run them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdss_core import fast_paths
from mdss_core.geometry import build_sdf_net, point_scores
from mdss_core.preprocess.patches import make_patches
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.maps import upsample_map
from mdss_core.rgb.pdn import PDN, init_pdn_, normalize_images
from tests.test_geometry import tiny_config


def small_sdf_net():
    return build_sdf_net(tiny_config()).eval()


def cloud_and_patches() -> tuple[np.ndarray, np.ndarray]:
    u = (np.arange(12) - 6) * 4e-4
    x, y = np.meshgrid(u, u, indexing="ij")
    z = 0.65 + 0.01 * x + 5e-4 * np.sin(2 * np.pi * x / 0.02)
    cloud = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    return cloud, make_patches(cloud, k=64, coverage=3.0, seed=0)


@pytest.fixture
def branch() -> RGBBranch:
    teacher = init_pdn_(PDN("small"), seed=1, scheme="he-normal")
    student = init_pdn_(PDN("small"), seed=2, scheme="he-normal")
    channels = teacher.out_channels
    return RGBBranch(teacher, student, torch.zeros(channels), torch.ones(channels)).eval()


def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3)).astype(np.uint8)


def needs(forward) -> None:
    if forward is None:
        pytest.skip("this torch build has no oneDNN fused kernels")


# ----------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize(("size", "padding"), [("small", False), ("medium", True)])
def test_packed_pdn_computes_the_same_function(size: str, padding: bool) -> None:
    pdn = init_pdn_(PDN(size, padding=padding), seed=3, scheme="he-normal").eval()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        forward, nbytes = fast_paths.pack_pdn(pdn)
        needs(forward)
        assert nbytes > 0
        expected = pdn(x)
        # Same function; only the summation order may differ (another memory layout).
        atol = 1e-5 * float(expected.abs().max())
        torch.testing.assert_close(forward(x), expected, rtol=1e-4, atol=atol)
        # Channels-last input (the inference layout) and another batch size work too.
        nhwc = x[:1].contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(forward(nhwc), expected[:1], rtol=1e-4, atol=atol)


def test_packed_decoder_computes_the_same_function() -> None:
    net = small_sdf_net()
    queries = torch.rand(3, 40, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.inference_mode():
        latent = net.encode(queries)
        decode, nbytes = fast_paths.pack_decoder(net.decoder, rows=3 * 40)
        needs(decode)
        assert nbytes > 0
        expected = net.decode(latent, queries)
        torch.testing.assert_close(decode(latent, queries), expected, rtol=1e-5, atol=1e-6)
        # Other batch shapes than the one it was packed for work too.
        torch.testing.assert_close(decode(latent[:1], queries[:1, :7]), expected[:1, :7])


def test_rgb_maps_equal_with_the_switch_on_and_off(branch) -> None:
    needs(fast_paths.pdn_forward(branch.student))
    fast = branch.anomaly_maps(images())
    with fast_paths.switched(False):
        assert fast_paths.pdn_forward(branch.student) is None
        plain = branch.anomaly_maps(images())
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-7)


def test_point_scores_equal_with_the_switch_on_and_off() -> None:
    net = small_sdf_net()
    cloud, patches = cloud_and_patches()
    needs(fast_paths.decoder_forward(net.decoder, 4 * 64))
    fast = point_scores(net, cloud, patches, batch_size=4)
    with fast_paths.switched(False):
        plain = point_scores(net, cloud, patches, batch_size=4)
    np.testing.assert_allclose(fast, plain, rtol=1e-5, atol=1e-7)
    assert (plain > 0).all()


# ----------------------------------------------------------------------------- one cache
def test_weights_key_changes_with_in_place_updates() -> None:
    pdn = PDN("small")
    key = fast_paths.weights_key(pdn)
    assert fast_paths.weights_key(pdn) == key
    with torch.no_grad():
        pdn[0].bias.add_(1.0)
    assert fast_paths.weights_key(pdn) != key


def test_rgb_maps_follow_weight_changes(branch) -> None:
    def module_maps() -> np.ndarray:
        with torch.inference_mode():
            x = normalize_images(images(), channels_last=True)
            return upsample_map(branch(x), (64, 64))[:, 0].numpy()

    needs(fast_paths.pdn_forward(branch.student))
    np.testing.assert_allclose(branch.anomaly_maps(images()), module_maps(), rtol=1e-5, atol=1e-7)
    packed = fast_paths.pdn_forward(branch.student)
    assert fast_paths.pdn_forward(branch.student) is packed  # kept between calls
    assert fast_paths.packed_bytes(branch) > 0
    with torch.no_grad():  # in place, as an optimizer step does
        branch.student[0].bias.add_(0.5)
    np.testing.assert_allclose(branch.anomaly_maps(images()), module_maps(), rtol=1e-5, atol=1e-7)
    assert fast_paths.pdn_forward(branch.student) is not packed


def test_packed_decoder_is_reused_until_the_weights_change(monkeypatch) -> None:
    calls: list[int] = []
    pack = fast_paths.pack_decoder

    def spy(decoder, rows):
        calls.append(rows)
        return pack(decoder, rows)

    monkeypatch.setattr(fast_paths, "pack_decoder", spy)
    net = small_sdf_net()
    cloud, patches = cloud_and_patches()
    first = point_scores(net, cloud, patches, batch_size=4)
    needs(fast_paths.decoder_forward(net.decoder, 4 * 64))
    np.testing.assert_array_equal(point_scores(net, cloud, patches, batch_size=4), first)
    assert calls == [4 * 64]  # packed once for two calls
    point_scores(net, cloud, patches, batch_size=2)
    assert calls == [4 * 64, 2 * 64]  # another batch shape is packed for
    with torch.no_grad():
        net.decoder.from_xyz.weight.mul_(1.5)  # a weight the packed form holds a copy of
    changed = point_scores(net, cloud, patches, batch_size=2)
    assert len(calls) == 3
    # The new weights are used, not the stale packed copy: it equals the plain module's result.
    with fast_paths.switched(False):
        np.testing.assert_allclose(changed, point_scores(net, cloud, patches), rtol=1e-5, atol=1e-6)
    assert not np.allclose(changed, first)


# ----------------------------------------------------------------------------- fallbacks
def test_what_cannot_be_packed_gets_none() -> None:
    odd = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    assert fast_paths.pack_pdn(odd) == (None, 0)
    assert fast_paths.pack_pdn(PDN("small").double()) == (None, 0)
    assert fast_paths.pack_decoder(small_sdf_net().double().decoder, 8) == (None, 0)


def test_kernels_that_fail_are_refused_once(branch, monkeypatch) -> None:
    expected = branch.anomaly_maps(images())
    needs(fast_paths.pdn_forward(branch.student))
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("could not create a primitive")

    # A build that packs but cannot run the kernels: the trial call at packing time fails.
    monkeypatch.setattr(torch.ops.mkldnn, "_convolution_pointwise", broken)
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken)
    with torch.no_grad():
        branch.student[0].bias.add_(0.0)  # new weights version: repacked on the next call
    np.testing.assert_allclose(branch.anomaly_maps(images()), expected, rtol=1e-5, atol=1e-7)
    assert fast_paths.pdn_forward(branch.student) is None
    tried = len(calls)
    branch.anomaly_maps(images())
    assert len(calls) == tried  # not retried at every call while the weights stay the same
    assert fast_paths.pack_decoder(small_sdf_net().decoder, 8) == (None, 0)
