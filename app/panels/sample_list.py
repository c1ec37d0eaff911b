"""Sample list: every sample of the folder with its labels and (once predicted) its scores.

A table model holds refs + scores; a proxy sorts (numerically, via SORT_ROLE) and filters by
text and split; the panel wraps the view and reports the current sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from mdss_app import style
from mdss_core.api import SampleRef

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
COLUMNS = ("Sample", "GT", "RGB", "3D", "Fused", "Decision")
COL_SAMPLE, COL_GT, COL_RGB, COL_3D, COL_FUSED, COL_DECISION = range(len(COLUMNS))
ALL_SPLITS = ""

AnyIndex = QModelIndex | QPersistentModelIndex


@dataclass
class SampleRow:
    ref: SampleRef
    rgb: float = math.nan
    geo: float = math.nan
    fused: float = math.nan

    @property
    def scored(self) -> bool:
        return not math.isnan(self.fused)


class SampleTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[SampleRow] = []
        self._row_of: dict[str, int] = {}
        self.image_threshold = math.nan
        self.hide_split = False  # one split shown: its name would repeat on every row

    # ----- content ----------------------------------------------------------------------------
    def set_refs(self, refs: list[SampleRef]) -> None:
        self.beginResetModel()
        self.rows = [SampleRow(r) for r in refs]
        self._row_of = {r.key: i for i, r in enumerate(refs)}
        self.endResetModel()

    def set_scores(self, key: str, rgb: float, geo: float, fused: float) -> None:
        row = self._row_of.get(key)
        if row is None:
            return
        item = self.rows[row]
        item.rgb, item.geo, item.fused = float(rgb), float(geo), float(fused)
        self.dataChanged.emit(self.index(row, COL_RGB), self.index(row, COL_DECISION))

    def clear_scores(self) -> None:
        for item in self.rows:
            item.rgb = item.geo = item.fused = math.nan
        self._all_changed(COL_RGB)

    def set_image_threshold(self, value: float) -> None:
        self.image_threshold = float(value)
        self._all_changed(COL_DECISION)

    def _all_changed(self, first_col: int) -> None:
        if self.rows:
            self.dataChanged.emit(
                self.index(0, first_col), self.index(len(self.rows) - 1, COL_DECISION)
            )

    def row_of(self, key: str) -> int | None:
        return self._row_of.get(key)

    def decision(self, item: SampleRow) -> str:
        if not item.scored or math.isnan(self.image_threshold):
            return ""
        return "defect" if item.fused >= self.image_threshold else "ok"

    # ----- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole:
            return {
                COL_RGB: "Image score of the RGB branch (max of its map)",
                COL_3D: "Image score of the 3D branch (max of its map)",
                COL_FUSED: "Fused image score (product of the two maxima); red = flagged defect",
                COL_DECISION: "Fused score against the image threshold",
            }.get(section)
        return None

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.rows[index.row()]
        col = index.column()
        ref = item.ref
        if role == KEY_ROLE:
            return ref.key
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(item, col)
        if role == SORT_ROLE:
            return self._sort_value(item, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(item, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col >= COL_RGB:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            if col == COL_FUSED and self.decision(item):
                return (
                    f"decision: {self.decision(item)} (image threshold {self.image_threshold:.4g})"
                )
            return f"{ref.key}\n{ref.rgb_path}"
        return None

    def _display(self, item: SampleRow, col: int) -> str:
        ref = item.ref
        if col == COL_SAMPLE:
            parts = (
                (ref.defect, ref.sample_id)
                if self.hide_split
                else (ref.split, ref.defect, ref.sample_id)
            )
            return "/".join(p for p in parts if p)
        if col == COL_GT:
            return {0: "good", 1: "defect"}.get(ref.label, "?")
        if col in (COL_RGB, COL_3D, COL_FUSED):
            value = (item.rgb, item.geo, item.fused)[col - COL_RGB]
            return "" if math.isnan(value) else f"{value:.3g}"
        return self.decision(item)

    def _sort_value(self, item: SampleRow, col: int):
        if col in (COL_RGB, COL_3D, COL_FUSED):
            value = (item.rgb, item.geo, item.fused)[col - COL_RGB]
            return -math.inf if math.isnan(value) else value
        if col == COL_SAMPLE:
            return item.ref.key
        if col == COL_GT:
            return item.ref.label
        return self._display(item, col)

    def _colour(self, item: SampleRow, col: int) -> QBrush | None:
        if col == COL_GT:
            colour = {0: style.NORMAL, 1: style.ANOMALY}.get(item.ref.label, style.UNKNOWN)
            return QBrush(QColor(colour))
        if col in (COL_DECISION, COL_FUSED):
            decision = self.decision(item)
            if decision:
                return QBrush(QColor(style.ANOMALY if decision == "defect" else style.NORMAL))
        return None


class SampleFilterProxy(QSortFilterProxyModel):
    """Filters on a text (any column, case-insensitive) and on the split."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.split = ALL_SPLITS
        self.setSortRole(SORT_ROLE)
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setFilterKeyColumn(-1)

    def set_split(self, split: str) -> None:
        refilter = getattr(self, "beginFilterChange", None)  # Qt ≥ 6.10; else invalidateFilter
        if refilter is not None:
            refilter()
        self.split = split
        model = self.sourceModel()
        if model is not None:
            model.hide_split = bool(split)
            if model.rows:
                model.dataChanged.emit(model.index(0, 0), model.index(len(model.rows) - 1, 0))
        if refilter is not None:
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if self.split and model.rows[source_row].ref.split != self.split:
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class SampleListPanel(QWidget):
    current_changed = Signal(object)  # SampleRef | None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = SampleTableModel(self)
        self.proxy = SampleFilterProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter (id, defect, ok/defect…)")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.setFilterFixedString)
        self.split_combo = QComboBox()
        self.split_combo.setToolTip("Show one split only")
        self.split_combo.currentIndexChanged.connect(
            lambda _: self.proxy.set_split(self.split_combo.currentData() or ALL_SPLITS)
        )
        self.count_label = QLabel("")
        self.count_label.setObjectName("muted")

        self.view = QTableView()
        self.view.setObjectName("sampleTable")
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setShowGrid(False)
        self.view.setWordWrap(False)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(22)
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        self.view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # keep folder order at first
        # The decision shows as the fused score's colour; the column stays for the text filter.
        self.view.setColumnHidden(COL_DECISION, True)
        self.view.selectionModel().currentRowChanged.connect(self._on_current_row)
        self.proxy.rowsInserted.connect(self._update_count)
        self.proxy.rowsRemoved.connect(self._update_count)
        self.proxy.modelReset.connect(self._update_count)
        self.proxy.layoutChanged.connect(self._update_count)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.filter_edit, 1)
        top.addWidget(self.split_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count_label)

    # ----- content ----------------------------------------------------------------------------
    def set_refs(self, refs: list[SampleRef], split: str | None = None) -> None:
        self.model.set_refs(refs)
        splits = sorted({r.split for r in refs if r.split})
        self.split_combo.blockSignals(True)
        self.split_combo.clear()
        self.split_combo.addItem("All splits", ALL_SPLITS)
        for name in splits:
            self.split_combo.addItem(name, name)
        chosen = self.split_combo.findData(split) if split else 0
        self.split_combo.setCurrentIndex(max(0, chosen))
        self.split_combo.setVisible(bool(splits))
        self.split_combo.blockSignals(False)
        self.proxy.set_split(self.split_combo.currentData() or ALL_SPLITS)
        self._update_count()

    def _update_count(self, *_) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        scored = sum(r.scored for r in self.model.rows)
        text = f"{shown} of {total} samples" if shown != total else f"{total} samples"
        if scored:
            text += f" · {scored} scored"
        self.count_label.setText(text)

    def set_scores(self, key: str, rgb: float, geo: float, fused: float) -> None:
        self.model.set_scores(key, rgb, geo, fused)
        self._update_count()

    # ----- selection --------------------------------------------------------------------------
    def current_ref(self) -> SampleRef | None:
        index = self.view.currentIndex()
        if not index.isValid():
            return None
        return self.model.rows[self.proxy.mapToSource(index).row()].ref

    def select_key(self, key: str) -> bool:
        row = self.model.row_of(key)
        if row is None:
            return False
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if not index.isValid():  # filtered out: clear the filters so the sample shows
            self.filter_edit.clear()
            self.split_combo.setCurrentIndex(0)
            index = self.proxy.mapFromSource(self.model.index(row, 0))
        self.view.setCurrentIndex(index)
        self.view.scrollTo(index)
        return True

    def select_row(self, proxy_row: int) -> None:
        if 0 <= proxy_row < self.proxy.rowCount():
            index = self.proxy.index(proxy_row, 0)
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)

    def step(self, delta: int) -> None:
        """Move the current sample by ``delta`` rows of the visible (sorted, filtered) list."""
        count = self.proxy.rowCount()
        if count == 0:
            return
        current = self.view.currentIndex()
        row = current.row() + delta if current.isValid() else 0
        self.select_row(min(max(row, 0), count - 1))

    def sort_by(self, column: int, descending: bool = True) -> None:
        order = Qt.SortOrder.DescendingOrder if descending else Qt.SortOrder.AscendingOrder
        self.view.sortByColumn(column, order)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            self.current_changed.emit(None)
            return
        self.current_changed.emit(self.model.rows[self.proxy.mapToSource(current).row()].ref)
