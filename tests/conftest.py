"""Shared fixtures: the real MVTec 3D-AD mini subset (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec3d_cable_gland_mini"
)


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real MVTec 3D-AD mini subset not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small synthetic MVTec-3D-layout category (64², a few samples) shared by engine tests."""
    from mdss_core.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    (root,) = generate_dataset(out, ["ring"], n_train=6, n_val=2, n_test=8, size=64, seed=3)
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: Path):
    """A model trained for seconds with the ``tiny`` preset (tests plumbing, not accuracy)."""
    from mdss_core.io import open_dataset
    from mdss_core.model import MDSSModel

    return MDSSModel.fit(open_dataset(tiny_dataset), "tiny", device="cpu")
