"""The normal-cell memory of the RGB branch (``mdss_core.rgb.memory``): the nearest-cell map,
the coreset it keeps, how it is built from training scans and how a model file carries it."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from mdss_core.config import get_preset
from mdss_core.errors import Cancelled, ConfigError, ModelFileError
from mdss_core.rgb import memory as memory_module
from mdss_core.rgb.branch import RGBBranch
from mdss_core.rgb.config import RGBConfig
from mdss_core.rgb.memory import build_normals_memory, greedy_coreset, nearest_memory_map


def _brute_force(features: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    n, c, h, w = features.shape
    cells = features.permute(0, 2, 3, 1).reshape(-1, 1, c)
    dist = ((cells - memory[None]) ** 2).mean(dim=2).min(dim=1).values
    return dist.reshape(n, 1, h, w)


def test_nearest_memory_map_is_the_brute_force_minimum_in_every_chunking(monkeypatch) -> None:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 6, 5, 4, generator=gen)
    memory = torch.randn(37, 6, generator=gen)
    expected = _brute_force(features, memory)
    for chunk in (4096, 10, 1):  # one chunk, several with a ragged end, one row each
        monkeypatch.setattr(memory_module, "MEMORY_CHUNK", chunk)
        got = nearest_memory_map(features, memory)
        assert got.shape == (2, 1, 5, 4)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # A cell equal to a memory row is at distance zero; others are not.
    features[0, :, 0, 0] = memory[3]
    got = nearest_memory_map(features, memory)
    assert float(got[0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-5)
    assert float(got.flatten()[1:].min()) > 1e-3


def test_several_draws_average_their_nearest_distances() -> None:
    gen = torch.Generator().manual_seed(2)
    features = torch.randn(2, 6, 3, 4, generator=gen)
    draws = [torch.randn(9, 6, generator=gen) for _ in range(3)]
    expected = sum(_brute_force(features, d) for d in draws) / 3
    got = nearest_memory_map(features, torch.cat(draws), draws=3)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    # Not the union's nearest distance: a cell that one draw holds is still far from others.
    assert not torch.allclose(got, _brute_force(features, torch.cat(draws)))


def test_greedy_coreset_is_deterministic_distinct_and_keeps_the_outlier() -> None:
    gen = torch.Generator().manual_seed(1)
    cells = torch.randn(500, 8, generator=gen) * 0.1
    cells[123] = 50.0  # one far, rare cell: random thinning would likely drop it
    picks = greedy_coreset(cells, 20, seed=3)
    assert len(picks) == 20 and len(set(picks.tolist())) == 20
    assert 123 in picks[:2].tolist()
    torch.testing.assert_close(picks, greedy_coreset(cells, 20, seed=3))
    assert greedy_coreset(cells, 600).tolist() == list(range(500))  # asked for more: all


def test_config_refuses_a_memory_without_normals_or_a_negative_size() -> None:
    with pytest.raises(ConfigError, match="normals_memory needs normals"):
        RGBConfig(normals_memory=16)
    with pytest.raises(ConfigError, match="normals_memory"):
        RGBConfig(normals=True, normals_memory=-1)
    with pytest.raises(ConfigError, match="normals_memory_draws"):
        RGBConfig(normals=True, normals_memory=16, normals_memory_draws=0)
    cpu = get_preset("cpu").rgb
    assert (cpu.normals_memory, cpu.normals_memory_draws) == (4096, 4)


def _branch(config: RGBConfig) -> RGBBranch:
    torch.manual_seed(0)
    return RGBBranch.empty(config)


def test_memory_is_built_from_foreground_cells_and_can_be_cancelled() -> None:
    config = replace(get_preset("tiny").rgb, normals=True, normals_memory=8)
    branch = _branch(config)
    rng = np.random.default_rng(0)
    normals = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    masks = np.zeros((3, 64, 64), bool)
    masks[:, 2:6, 2:6] = True  # a corner: only the cells whose 33-px field reaches it
    reports = []
    rows = build_normals_memory(branch, normals, masks, 2, progress=reports.append)
    channels = branch.mean.shape[1] // 2
    assert rows.shape == (2, channels) and torch.isfinite(rows).all()
    assert reports and {r.stage for r in reports} == {"rgb-memory"}
    assert reports[-1].step == reports[-1].total == 3 + 2  # three images, then two picks
    # Every kept row is one of the foreground cells' normalised teacher features.
    everything = build_normals_memory(branch, normals, masks, 10**6)
    all_cells = build_normals_memory(branch, normals, None, 10**6)
    assert len(everything) < len(all_cells)
    assert torch.cdist(rows, everything).min(dim=1).values.max() < 1e-4
    token = threading.Event()  # set by the first report: the build stops between batches
    with pytest.raises(Cancelled):
        build_normals_memory(
            branch, normals, masks, 2, progress=lambda _: token.set(), cancel=token, batch_size=1
        )
    late = threading.Event()  # set once every image is in: the picks stop
    with pytest.raises(Cancelled):
        build_normals_memory(
            branch, normals, masks, 2, progress=lambda p: p.step >= 3 and late.set(), cancel=late
        )


def test_draws_are_independent_coresets_stacked_in_seed_order() -> None:
    config = replace(get_preset("tiny").rgb, normals=True, normals_memory=4)
    branch = _branch(config)
    normals = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    reports = []
    rows = build_normals_memory(branch, normals, None, 3, seed=0, draws=2, progress=reports.append)
    assert rows.shape[0] == 6 and reports[-1].step == reports[-1].total == 2 + 2 * 3
    assert [r.step for r in reports] == sorted(r.step for r in reports)
    # Draw i of training seed s is the single coreset of seed s·draws + i.
    torch.testing.assert_close(rows[:3], build_normals_memory(branch, normals, None, 3, seed=0))
    torch.testing.assert_close(rows[3:], build_normals_memory(branch, normals, None, 3, seed=1))
    assert not torch.equal(rows[:3], rows[3:])


def test_branch_with_memory_round_trips_and_replaces_only_the_normal_map() -> None:
    config = replace(get_preset("tiny").rgb, normals=True, normals_memory=5)
    branch = _branch(config)
    branch.memory = torch.randn(5, branch.mean.shape[1] // 2)
    x = torch.randn(2, 6, 64, 64)
    with torch.no_grad():
        maps = branch(x)
        without = {**branch.state_dict(), "memory": torch.zeros(0, branch.memory.shape[1])}
        plain = RGBBranch.from_state_dict(without, replace(config, normals_memory=0))(x)
    torch.testing.assert_close(maps[:, 0], plain[:, 0])  # the colour map is the student's
    assert not torch.allclose(maps[:, 1], plain[:, 1])
    loaded = RGBBranch.from_state_dict(branch.state_dict(), config)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), maps)


def test_a_memory_that_does_not_fit_the_config_is_refused() -> None:
    config = replace(get_preset("tiny").rgb, normals=True, normals_memory=5)
    state = _branch(config).state_dict()
    wrong_width = {**state, "memory": torch.zeros(5, 7)}
    with pytest.raises(ModelFileError, match="memory has shape"):
        RGBBranch.from_state_dict(wrong_width, config, source="m.mdss")
    with pytest.raises(ModelFileError, match="normals_memory"):
        RGBBranch.from_state_dict(state, config, source="m.mdss")  # config wants rows, none
    three_draws = replace(config, normals_memory_draws=3)
    with pytest.raises(ModelFileError, match="not 3 equal draws") as caught:
        ragged = {**state, "memory": torch.zeros(5, state["memory"].shape[1])}
        RGBBranch.from_state_dict(ragged, three_draws, "m.mdss")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("m.mdss")
