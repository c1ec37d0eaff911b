"""PDN shapes, input normalisation and map up-sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdss_core.rgb.maps import upsample_map
from mdss_core.rgb.pdn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PDN,
    conv_indices,
    init_pdn_,
    normalize_images,
    pdn_output_size,
)


@pytest.mark.parametrize(
    ("size", "padding", "side", "expected"),
    [
        ("small", False, 256, 56),
        ("small", False, 64, 8),
        ("small", True, 64, 16),
        ("medium", False, 64, 8),
        ("medium", True, 64, 16),
    ],
)
def test_output_grid(size: str, padding: bool, side: int, expected: int) -> None:
    assert pdn_output_size(side, size, padding) == expected
    with torch.no_grad():
        out = PDN(size, padding=padding)(torch.zeros(1, 3, side, side))
    assert out.shape == (1, 384, expected, expected)


def test_small_pdn_matches_published_layout() -> None:
    pdn = PDN("small")
    keys = [k for k in pdn.state_dict() if k.endswith("weight")]
    assert keys == ["0.weight", "3.weight", "6.weight", "8.weight"]
    assert sum(p.numel() for p in pdn.parameters()) == 2_694_144
    assert conv_indices("medium") == (0, 3, 6, 8, 10, 12)
    assert isinstance(pdn[-1], torch.nn.Conv2d)  # no ReLU on the output


def test_normalize_images_accepts_uint8_float_and_both_layouts() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    reference = normalize_images(images)
    assert reference.shape == (2, 3, 5, 7) and reference.dtype == torch.float32
    as_float = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    assert torch.allclose(normalize_images(as_float), reference, atol=1e-6)
    assert torch.allclose(normalize_images(images[0]), reference[:1])
    pixel = images[1, 2, 3, 0] / 255.0
    expected = (pixel - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    assert reference[1, 0, 2, 3].item() == pytest.approx(expected, abs=1e-6)


def test_normalize_images_channels_last_has_identical_values() -> None:
    images = np.random.default_rng(4).integers(0, 256, (2, 20, 24, 3), dtype=np.uint8)
    plain = normalize_images(images)
    nhwc = normalize_images(images, channels_last=True)
    assert plain.is_contiguous() and nhwc.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, nhwc)  # same numbers bit for bit, only the memory order differs


def test_normalize_images_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError):
        normalize_images(np.zeros((2, 8, 8, 4), dtype=np.uint8))


def test_upsample_map_aligns_cells_with_pixels() -> None:
    cells = torch.zeros(1, 1, 56, 56)
    cells[0, 0, 10, 20] = 1.0
    pixel = upsample_map(cells, 256)
    assert pixel.shape == (1, 1, 256, 256)
    peak = np.unravel_index(int(pixel.argmax()), (256, 256))
    # Cell i is centred near pixel 4i + 16 (+1.5 for the 4-px cell's own centre).
    assert abs(peak[0] - (4 * 10 + 16 + 1.5)) <= 2 and abs(peak[1] - (4 * 20 + 16 + 1.5)) <= 2
    assert upsample_map(torch.zeros(2, 1, 8, 8), (64, 48)).shape == (2, 1, 64, 48)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone() -> None:
    nets = [PDN(), PDN(), PDN()]  # constructing draws from the global RNG; init_pdn_ must not
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = init_pdn_(nets[0], 7, "he-normal")
    after = torch.rand(1)
    b = init_pdn_(nets[1], 7, "he-normal")
    c = init_pdn_(nets[2], 8, "he-normal")
    assert torch.equal(before, after)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    assert torch.all(a[0].bias == 0)
