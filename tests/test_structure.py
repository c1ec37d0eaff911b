"""Rules of the code's structure, read from the source: no import cycle inside the engine; the
desktop inspector reaches the engine through its façade (``mdss_core.api``) only, keeps its
state in a Qt-free session, and its main window is layout and wiring.

Every import counts, the lazy ones inside functions too: a cycle that only shows at run time
is still two modules that cannot be understood (or changed) one without the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def modules(package: str) -> dict[str, Path]:
    """Dotted name → file of every module of a package folder (``__init__`` as the package)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that the file's ``import`` and ``from … import`` name; in
    ``from a import b`` that is ``a.b`` when it is a module, else ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in known else node.module)
    return found & known


def import_graph(package: str) -> dict[str, set[str]]:
    """Module → the modules of the same package it imports."""
    known = modules(package)
    return {name: imported_modules(path, set(known)) - {name} for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_engine_has_no_import_cycle() -> None:
    graph = import_graph("mdss_core")
    assert len(graph) > 50 and graph["mdss_core.model"]  # really read the package
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def engine_modules_named_in(path: Path) -> set[str]:
    """The ``mdss_core`` modules a file imports (``from mdss_core import x`` names ``x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "mdss_core":
            found.update(f"mdss_core.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return {name for name in found if name.split(".")[0] == "mdss_core"}


def test_the_app_imports_only_the_engine_facade() -> None:
    used = {path.name: engine_modules_named_in(path) for path in (ROOT / "app").rglob("*.py")}
    assert len(used) > 10 and any(used.values())  # really read the app
    beyond = {name: sorted(mods - {"mdss_core.api"}) for name, mods in used.items()}
    assert not any(beyond.values()), beyond


def test_app_functions_are_short_and_the_main_window_is_layout_and_wiring() -> None:
    long = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.name}:{node.name} ({lines} lines)")
    assert long == []
    window = (ROOT / "app" / "main_window.py").read_text(encoding="utf-8")
    assert len(window.splitlines()) <= 300


def test_the_inspector_session_imports_no_qt() -> None:
    code = (
        "import sys, mdss_app.session\n"
        "qt = {'PySide6', 'shiboken6', 'pyqtgraph'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not qt, qt\n"
        "assert 'torch' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
