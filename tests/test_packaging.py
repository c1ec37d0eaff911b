"""A wheel (not only an editable install) carries the engine, the app and the resources."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_packages_and_resources(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = tmp_path.glob("mdss-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mdss_core/model.py" in names and "mdss_core/io/layout.py" in names
    assert "mdss_app/main.py" in names and "mdss_resources/__init__.py" in names
    bundled = {
        p.relative_to(ROOT / "resources").as_posix()
        for p in (ROOT / "resources").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    missing = {f"mdss_resources/{name}" for name in bundled} - names
    assert not missing, f"resources left out of the wheel: {sorted(missing)[:5]}"
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mdss = mdss_core.cli.main:main" in text and "mdss-gui = mdss_app.main:main" in text
