"""Persistent user settings (QSettings): last folder/model, teacher file, window layout."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths
from PySide6.QtWidgets import QMainWindow

ORGANIZATION = "mdss"
APPLICATION = "mdss-gui"


def workspace() -> Path:
    """Where the inspector writes by default (models, exports): the platform's per-user data
    folder, or ``MDSS_WORKSPACE``. Never the data being inspected."""
    chosen = os.environ.get("MDSS_WORKSPACE") or QStandardPaths.writableLocation(
        QStandardPaths.StandardLocation.AppDataLocation
    )
    return Path(chosen or Path.home() / ".mdss")


def free_path(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem+suffix``, or ``stem-2``, ``stem-3``… when taken: a default never replaces
    a file the user already has."""
    folder.mkdir(parents=True, exist_ok=True)
    path, n = folder / f"{stem}{suffix}", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}{suffix}", n + 1
    return path


class AppSettings:
    """Typed access to the few values the inspector remembers between runs."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self._s = qsettings if qsettings is not None else QSettings(ORGANIZATION, APPLICATION)

    def _text(self, key: str) -> str:
        value = self._s.value(key, "")
        return str(value) if value else ""

    @property
    def last_folder(self) -> str:
        return self._text("paths/last_folder")

    @last_folder.setter
    def last_folder(self, value: str) -> None:
        self._s.setValue("paths/last_folder", value)

    @property
    def last_model(self) -> str:
        return self._text("paths/last_model")

    @last_model.setter
    def last_model(self, value: str) -> None:
        self._s.setValue("paths/last_model", value)

    @property
    def teacher_path(self) -> str:
        return self._text("paths/teacher")

    @teacher_path.setter
    def teacher_path(self, value: str) -> None:
        self._s.setValue("paths/teacher", value)

    @property
    def overlay_opacity(self) -> float:
        try:
            return min(1.0, max(0.0, float(self._s.value("view/overlay_opacity", 0.6))))
        except (TypeError, ValueError):
            return 0.6

    @overlay_opacity.setter
    def overlay_opacity(self, value: float) -> None:
        self._s.setValue("view/overlay_opacity", float(value))

    def save_window(self, window: QMainWindow) -> None:
        self._s.setValue("window/geometry", window.saveGeometry())
        self._s.setValue("window/state", window.saveState())

    def restore_window(self, window: QMainWindow) -> bool:
        """Restore geometry and dock layout; False when nothing (valid) was stored."""
        geometry = self._s.value("window/geometry")
        state = self._s.value("window/state")
        restored = False
        if isinstance(geometry, QByteArray) and not geometry.isEmpty():
            restored = window.restoreGeometry(geometry)
        if isinstance(state, QByteArray) and not state.isEmpty():
            window.restoreState(state)
        return restored

    def sync(self) -> None:
        self._s.sync()
