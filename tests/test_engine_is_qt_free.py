"""The engine must never import Qt: importing every mdss_core module leaves PySide6 unloaded."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, sys
import mdss_core
names = [m.name for m in pkgutil.walk_packages(mdss_core.__path__, "mdss_core.")]
for name in names:
    importlib.import_module(name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "shiboken6",
                                                          "pyqtgraph", "vtkmodules.qt"})
print(len(names))
assert not qt, f"Qt modules imported by the engine: {qt}"
"""


def test_importing_every_engine_module_pulls_no_qt() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 5  # really walked the package
