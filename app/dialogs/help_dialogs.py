"""Help menu dialogs: a quick start and the keyboard shortcuts.

The shortcuts table is read from the window's actions and shortcuts when it opens, so it
always shows the keys that really work.
"""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

QUICK_START = """<h3>Quick start</h3>
<ol>
<li><b>Open a folder</b> (File ▸ Open folder…): an MVTec 3D-AD category, one split, or a folder
of rgb/ + xyz/ samples. File ▸ Open demo shows a ready-made example.</li>
<li><b>Get a model</b>: Model ▸ Open model… loads a trained <i>.mdss</i> file; Model ▸ Train…
trains one on the folder's <i>train/good</i> samples (in the background).</li>
<li>The folder is <b>scored</b>: sort the sample list by <i>Fused</i> to see the worst first;
red scores are flagged as defects.</li>
<li><b>Click a defect</b> in the RGB, fused or 3D view: the region is outlined everywhere, the
3D view zooms to it and the Inspector gives its scores, area and driver.</li>
<li>Press <b>R</b> to see the whole sample again.</li>
<li><b>Threshold</b> panel: the pixel threshold sets the regions, the image threshold (drag its
line) decides defect or ok.</li>
<li><b>Export</b> (File ▸ Export results…): PNG/TIFF maps per sample and a CSV of scores.</li>
</ol>"""


def _close_buttons(dialog: QDialog) -> QDialogButtonBox:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    return buttons


def quick_start_dialog(parent: QWidget | None = None) -> QDialog:
    dialog = QDialog(parent)
    dialog.setObjectName("quickStartDialog")
    dialog.setWindowTitle("Quick start")
    text = QLabel(QUICK_START)
    text.setWordWrap(True)
    text.setMinimumWidth(460)
    layout = QVBoxLayout(dialog)
    layout.addWidget(text)
    layout.addWidget(_close_buttons(dialog))
    return dialog


def _plain(text: str) -> str:
    return text.replace("&", "").rstrip("…").strip()


def shortcut_rows(window: QWidget) -> list[tuple[str, str]]:
    """(keys, what they do) of every action and shortcut of ``window`` that has keys."""
    rows: list[tuple[str, str]] = []
    for action in window.findChildren(QAction):
        keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()]
        keys = [k for k in keys if k]
        if keys and action.text():
            rows.append((", ".join(keys), _plain(action.text())))
    for shortcut in window.findChildren(QShortcut):
        keys = shortcut.key().toString(QKeySequence.SequenceFormat.NativeText)
        if keys and shortcut.isEnabled():
            rows.append((keys, shortcut.whatsThis() or keys))
    return sorted(set(rows), key=lambda row: (row[1].lower(), row[0]))


def shortcuts_dialog(window: QWidget, extra: list[tuple[str, str]] | None = None) -> QDialog:
    """A table of the window's shortcuts; ``extra`` adds keys handled by widgets themselves."""
    rows = sorted(shortcut_rows(window) + list(extra or []), key=lambda r: r[1].lower())
    dialog = QDialog(window)
    dialog.setObjectName("shortcutsDialog")
    dialog.setWindowTitle("Keyboard shortcuts")
    table = QTableWidget(len(rows), 2, dialog)
    table.setObjectName("shortcutsTable")
    table.setHorizontalHeaderLabels(["Keys", "Action"])
    for row, (keys, text) in enumerate(rows):
        table.setItem(row, 0, QTableWidgetItem(keys))
        table.setItem(row, 1, QTableWidgetItem(text))
    table.verticalHeader().setVisible(False)
    table.setWordWrap(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    table.resizeRowsToContents()
    height = table.horizontalHeader().sizeHint().height() + 4
    height += sum(table.rowHeight(r) for r in range(len(rows)))
    table.setMinimumSize(420, min(560, height))
    layout = QVBoxLayout(dialog)
    layout.addWidget(table)
    layout.addWidget(_close_buttons(dialog))
    dialog.table = table
    return dialog
