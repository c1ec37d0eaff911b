"""Look of the inspector: a dark Fusion palette, the bundled style sheet, pyqtgraph defaults."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from mdss_resources import resource_path

# Colours used by several panels (one place so 2D, 3D and lists agree).
BACKGROUND = "#15171b"
PANEL = "#1d2026"
TEXT = "#d9dee5"
MUTED = "#8b95a3"
ACCENT = "#3d8bfd"
ANOMALY = "#ff5d5d"
NORMAL = "#3fb96d"
UNKNOWN = "#9aa3ad"
THRESHOLD = "#ffb347"
GT = "#40e08a"
SELECTION = "#36d6ff"
CROSSHAIR = "#e6f1ff"
# The anomaly-score colour map is the engine's (mdss_core.overlay_render, via the façade), so
# the panels and the exported overlays read the same way.


def apply_style(app: QApplication) -> None:
    """Fusion + dark palette + style sheet; call once after the QApplication exists."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    sheet = resource_path("style", "mdss.qss")
    if sheet.is_file():
        app.setStyleSheet(sheet.read_text(encoding="utf-8"))
    app.setWindowIcon(icon("mdss"))
    configure_pyqtgraph()


def configure_pyqtgraph() -> None:
    # Row-major arrays match numpy images (row = y, col = x) so no transposes anywhere.
    pg.setConfigOptions(
        imageAxisOrder="row-major", antialias=True, background=BACKGROUND, foreground=TEXT
    )


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: PANEL,
        QPalette.ColorRole.WindowText: TEXT,
        QPalette.ColorRole.Base: BACKGROUND,
        QPalette.ColorRole.AlternateBase: "#20242b",
        QPalette.ColorRole.ToolTipBase: "#2a2f37",
        QPalette.ColorRole.ToolTipText: TEXT,
        QPalette.ColorRole.Text: TEXT,
        QPalette.ColorRole.Button: "#272b33",
        QPalette.ColorRole.ButtonText: TEXT,
        QPalette.ColorRole.BrightText: "#ffffff",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: MUTED,
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5d6570"))
    return palette


def icon(name: str) -> QIcon:
    """An icon from resources/icons (empty icon when the file is missing)."""
    path = resource_path("icons", f"{name}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()
