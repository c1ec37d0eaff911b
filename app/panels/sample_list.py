"""Sample list: every sample of the folder with its labels and (once scored) its scores.

A table model over the session's refs reads scores and decisions from the session; a proxy
sorts (numerically, via SORT_ROLE) and filters by text and split; the panel wraps the view and
selects the current sample in the session.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
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
from mdss_app.session import InspectorSession, Thresholds
from mdss_core.api import DatasetIndex, Prediction, SampleRef

SORT_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
# Fused (coloured by the decision) comes first of the scores: it stays in sight in a narrow list.
COLUMNS = ("Sample", "GT", "Fused", "RGB", "3D", "Decision")
COL_SAMPLE, COL_GT, COL_FUSED, COL_RGB, COL_3D, COL_DECISION = range(len(COLUMNS))
SCORE_COLUMNS = (COL_FUSED, COL_RGB, COL_3D)  # contiguous, up to COL_DECISION
ALL_SPLITS = ""
MARKED_GOOD = " ✓"  # after the name of a sample marked as good (a false alarm)

AnyIndex = QModelIndex | QPersistentModelIndex


class SampleTableModel(QAbstractTableModel):
    """The session's samples as table rows; scores and decisions are read from the session."""

    def __init__(self, session: InspectorSession, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.refs: list[SampleRef] = []
        self._row_of: dict[str, int] = {}
        self.hide_split = False  # one split shown: its name would repeat on every row
        self.is_marked: Callable[[SampleRef], bool] | None = None  # see app/feedback.py

    # ----- content ----------------------------------------------------------------------------
    def set_refs(self, refs: list[SampleRef]) -> None:
        self.beginResetModel()
        self.refs = list(refs)
        self._row_of = {r.key: i for i, r in enumerate(self.refs)}
        self.endResetModel()

    def scores_changed(self, key: str | None = None) -> None:
        """One sample's scores (``key``) or every sample's changed."""
        row = None if key is None else self._row_of.get(key)
        if row is not None:
            self.dataChanged.emit(self.index(row, COL_FUSED), self.index(row, COL_DECISION))
        elif key is None:
            self._all_changed(COL_FUSED)

    def decisions_changed(self, old: float, new: float) -> None:
        """The image threshold moved from ``old`` to ``new``: repaint the samples it crossed.

        One cell at a time: a view repaints all it shows for any change to a range of cells,
        and a threshold drag moves past only a few scores per step.
        """
        if math.isnan(old) or math.isnan(new):
            self._all_changed(COL_FUSED)
            return
        low, high = min(old, new), max(old, new)
        predictions = self.session.predictions
        for row, ref in enumerate(self.refs):
            prediction = predictions.get(ref.key)
            if prediction is not None and low <= prediction.score_fused < high:
                for col in (COL_FUSED, COL_DECISION):
                    self.dataChanged.emit(self.index(row, col), self.index(row, col))

    def _all_changed(self, first_col: int) -> None:
        if self.refs:
            self.dataChanged.emit(
                self.index(0, first_col), self.index(len(self.refs) - 1, COL_DECISION)
            )

    def _marked(self, ref: SampleRef) -> bool:
        return self.is_marked is not None and self.is_marked(ref)

    def marked_count(self) -> int:
        return sum(map(self.is_marked, self.refs)) if self.is_marked else 0

    def row_of(self, key: str) -> int | None:
        return self._row_of.get(key)

    def scored(self) -> int:
        return sum(ref.key in self.session.predictions for ref in self.refs)

    def decision(self, prediction: Prediction | None) -> str:
        if prediction is None or math.isnan(self.session.thresholds.image):
            return ""
        return "defect" if self.session.is_flagged(prediction) else "ok"

    # ----- Qt model interface ---------------------------------------------------------------
    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.refs)

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
        ref = self.refs[index.row()]
        prediction = self.session.predictions.get(ref.key)
        col = index.column()
        if role == KEY_ROLE:
            return ref.key
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(ref, prediction, col)
        if role == SORT_ROLE:
            return self._sort_value(ref, prediction, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._colour(ref, prediction, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in SCORE_COLUMNS:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            decision = self.decision(prediction)
            if col == COL_FUSED and decision:
                return f"decision: {decision} (image threshold {self.session.thresholds.image:.4g})"
            marked = "\nmarked as good (copied for the next training)" if self._marked(ref) else ""
            return f"{ref.key}\n{ref.rgb_path}{marked}"
        return None

    def _display(self, ref: SampleRef, prediction: Prediction | None, col: int) -> str:
        if col == COL_SAMPLE:
            parts = (
                (ref.defect, ref.sample_id)
                if self.hide_split
                else (ref.split, ref.defect, ref.sample_id)
            )
            name = "/".join(p for p in parts if p)
            return name + MARKED_GOOD if self._marked(ref) else name
        if col == COL_GT:
            return {0: "good", 1: "defect"}.get(ref.label, "?")
        if col in SCORE_COLUMNS:
            return "" if prediction is None else f"{_score(prediction, col):.3g}"
        return self.decision(prediction)

    def _sort_value(self, ref: SampleRef, prediction: Prediction | None, col: int):
        if col in SCORE_COLUMNS:
            return -math.inf if prediction is None else _score(prediction, col)
        if col == COL_SAMPLE:
            return ref.key
        if col == COL_GT:
            return ref.label
        return self._display(ref, prediction, col)

    def _colour(self, ref: SampleRef, prediction: Prediction | None, col: int) -> QBrush | None:
        if col == COL_GT:
            colour = {0: style.NORMAL, 1: style.ANOMALY}.get(ref.label, style.UNKNOWN)
            return QBrush(QColor(colour))
        if col in (COL_DECISION, COL_FUSED):
            decision = self.decision(prediction)
            if decision:
                return QBrush(QColor(style.ANOMALY if decision == "defect" else style.NORMAL))
        return None


def _score(prediction: Prediction, col: int) -> float:
    if col == COL_FUSED:
        return prediction.score_fused
    return prediction.score_rgb if col == COL_RGB else prediction.score_3d


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
            if model.refs:
                model.dataChanged.emit(model.index(0, 0), model.index(len(model.refs) - 1, 0))
        if refilter is not None:
            self.endFilterChange()
        else:
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: AnyIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if self.split and model.refs[source_row].split != self.split:
            return False
        return super().filterAcceptsRow(source_row, source_parent)


class SampleListPanel(QWidget):
    """The session's samples, sortable and filterable; choosing one selects it in the session."""

    def __init__(self, session: InspectorSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.model = SampleTableModel(session, self)
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
        self.view = self._build_view()
        self._fit_columns = QTimer(self)  # scores arrive in bursts: fit the columns once after
        self._fit_columns.setSingleShot(True)
        self._fit_columns.setInterval(200)
        self._fit_columns.timeout.connect(self.view.resizeColumnsToContents)
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset):
            signal.connect(self._update_count)
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
        self._follow(session)

    def _build_view(self) -> QTableView:
        view = QTableView()
        view.setObjectName("sampleTable")
        view.setModel(self.proxy)
        view.setSortingEnabled(True)
        view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        view.setAlternatingRowColors(True)
        view.setShowGrid(False)
        view.setWordWrap(False)
        view.verticalHeader().setVisible(False)
        view.verticalHeader().setDefaultSectionSize(22)
        header = view.horizontalHeader()
        # Fitted to the contents when they change (below), not on every repaint: a header that
        # resizes to contents reads every row at each update, and a threshold change updates all.
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        header.setHighlightSections(False)
        view.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # keep folder order at first
        # The decision shows as the fused score's colour; the column stays for the text filter.
        view.setColumnHidden(COL_DECISION, True)
        view.selectionModel().currentRowChanged.connect(self._on_current_row)
        return view

    def _follow(self, session: InspectorSession) -> None:
        events = session.events
        events.dataset.connect(self._on_dataset)
        events.scores_cleared.connect(self._on_scores_cleared)
        events.scored.connect(self._on_scored)
        events.thresholds.connect(self._on_thresholds)

    def _on_dataset(self, dataset: DatasetIndex) -> None:
        default_split = "test" if any(r.split == "test" for r in dataset.refs) else None
        self.set_refs(list(dataset.refs), default_split)
        self.step(0)

    def _on_thresholds(self, new: Thresholds, old: Thresholds) -> None:
        if new.image != old.image:
            self.model.decisions_changed(old.image, new.image)

    def _on_scores_cleared(self) -> None:
        self.model.scores_changed()
        self._update_count()

    def _on_scored(self, ref: SampleRef, _prediction: object) -> None:
        self.model.scores_changed(ref.key)
        self._update_count()
        self._fit_columns.start()

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
        self.view.resizeColumnsToContents()

    def set_marks(self, is_marked: Callable[[SampleRef], bool] | None, key: str | None) -> None:
        """Show which samples are marked as good (``key``: the one that changed, else all)."""
        self.model.is_marked = is_marked
        row = None if key is None else self.model.row_of(key)
        if row is not None:
            index = self.model.index(row, COL_SAMPLE)
            self.model.dataChanged.emit(index, index)
        elif self.model.refs:
            last = self.model.index(len(self.model.refs) - 1, COL_SAMPLE)
            self.model.dataChanged.emit(self.model.index(0, COL_SAMPLE), last)
        self._update_count()

    def _update_count(self, *_) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        scored = len(self.session.predictions)
        text = f"{shown} of {total} samples" if shown != total else f"{total} samples"
        if scored:
            text += f" · {scored} scored"
        marked = self.model.marked_count()
        if marked:
            text += f" · {marked} marked good"
        self.count_label.setText(text)

    # ----- selection --------------------------------------------------------------------------
    def current_ref(self) -> SampleRef | None:
        index = self.view.currentIndex()
        if not index.isValid():
            return None
        return self.model.refs[self.proxy.mapToSource(index).row()]

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
        self.session.select(self.current_ref() if current.isValid() else None)
