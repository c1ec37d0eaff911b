"""Shared fixtures: the real MVTec 3D-AD mini subset (skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mvtec3d_cable_gland_mini"


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    if not (REAL_DATA / "train").is_dir():
        pytest.skip(f"real MVTec 3D-AD mini subset not found at {REAL_DATA}")
    return REAL_DATA
