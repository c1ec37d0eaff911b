"""Dynamic loss (MDSS Eq. 1), cosine schedule of d, and mask → output grid."""

from __future__ import annotations

import pytest
import torch

from mdss_core.rgb.maps import mask_to_grid
from mdss_core.rgb.train import cosine_d, dynamic_loss


def _ramp(n: int) -> torch.Tensor:
    """1×1×1×n tensor with values 1..n: the d-quantile picks a known tail."""
    return torch.arange(1, n + 1, dtype=torch.float32).view(1, 1, 1, n)


def test_quantile_selects_the_top_tail() -> None:
    diff = _ramp(100)
    # "higher" 0.9-quantile of 1..100 is the value at rank ceil(0.9·99)+1 = 91 → mean(91..100).
    assert dynamic_loss(diff, None, 0.9).item() == pytest.approx(95.5)
    assert dynamic_loss(diff, None, 0.5).item() == pytest.approx(sum(range(51, 101)) / 50)


def test_d_changes_how_many_elements_are_averaged() -> None:
    diff = torch.rand(2, 8, 10, 10, generator=torch.Generator().manual_seed(0))
    means = [dynamic_loss(diff, None, d).item() for d in (0.5, 0.9, 0.99)]
    assert means[0] < means[1] < means[2]
    values = diff.flatten().sort().values
    for d, mean in zip((0.5, 0.9, 0.99), means, strict=True):
        count = int((values >= values[int(torch.tensor(d * 1599).ceil())]).sum())
        assert mean == pytest.approx(values[-count:].mean().item(), rel=1e-6)


def test_background_is_never_selected() -> None:
    diff = torch.ones(1, 4, 6, 6)
    diff[..., :, :3] = 100.0  # huge errors in the background half
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :, 3:] = 1.0
    assert dynamic_loss(diff, mask, 0.99).item() == pytest.approx(1.0)
    # The same tensor without a mask is dominated by the background.
    assert dynamic_loss(diff, None, 0.99).item() == pytest.approx(100.0)


def test_quantile_is_over_foreground_only() -> None:
    # 10 foreground values 1..10 among 90 background cells; d = 0.8 keeps the top 2 (9, 10).
    # Over all 100 elements the literal quantile would be 0 and average everything.
    diff = torch.zeros(1, 1, 10, 10)
    diff[0, 0, 0, :] = torch.arange(1, 11, dtype=torch.float32)
    diff[0, 0, 1:, :] = 50.0
    mask = torch.zeros(1, 1, 10, 10)
    mask[0, 0, 0, :] = 1.0
    assert dynamic_loss(diff, mask, 0.8).item() == pytest.approx(9.5)


def test_loss_gradient_reaches_only_selected_elements() -> None:
    diff = _ramp(10).clone().requires_grad_(True)
    dynamic_loss(diff, None, 0.8).backward()
    grad = diff.grad.flatten()
    assert torch.all(grad[:8] == 0) and torch.all(grad[8:] > 0)


def test_empty_mask_gives_zero_loss_with_a_gradient_path() -> None:
    diff = torch.rand(1, 2, 3, 3, requires_grad=True)
    loss = dynamic_loss(diff, torch.zeros(1, 1, 3, 3), 0.99)
    loss.backward()
    assert loss.item() == 0.0 and diff.grad is not None


def test_cosine_schedule_runs_from_start_to_end() -> None:
    values = [cosine_d(step, 11, 0.99, 0.999) for step in range(11)]
    assert values[0] == pytest.approx(0.99) and values[-1] == pytest.approx(0.999)
    assert values[5] == pytest.approx((0.99 + 0.999) / 2)
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))


def test_mask_grid_keeps_cells_touching_the_object() -> None:
    mask = torch.zeros(1, 1, 256, 256)
    mask[..., 100:101, 100:101] = 1.0  # one foreground pixel
    grid = mask_to_grid(mask, (56, 56))
    assert grid.shape == (1, 1, 56, 56)
    rows = torch.nonzero(grid[0, 0].amax(1)).flatten().tolist()
    # Cell i covers pixels 4i … 4i+32: pixel 100 lies in cells 17 … 25.
    assert rows == list(range(17, 26))
