"""Inspector: the current sample's image scores and what is under the last click."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QVBoxLayout, QWidget

from mdss_app import style
from mdss_app.session import InspectorSession, Selection, Thresholds, View
from mdss_core.api import Prediction, Region, RegionSet, relative_score

DRIVER_TEXT = {
    "colour": "colour (RGB branch)",
    "geometry": "geometry (3D branch)",
    "both": "colour + geometry",
}
DRIVER_COLOUR = {"colour": "#f28ad8", "geometry": "#6fb6ff", "both": "#ffd166"}


def fmt(value: float | None, digits: int = 4) -> str:
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:.{digits}g}"


def pixel_text(view: View, row: int, col: int) -> str:
    """One line about the pixel under the pointer: its depth and scores ("" outside)."""
    sample, prediction = view.sample, view.prediction
    if sample is None or not (0 <= row < sample.shape[0] and 0 <= col < sample.shape[1]):
        return ""
    text = f"pixel ({row}, {col})"
    z = float(sample.xyz[row, col, 2])
    if z:
        text += f" · z {z * 1000:.1f} mm"
    if prediction is not None:
        text += f" · fused {prediction.fused_map[row, col]:.4g}"
        text += f" · RGB {prediction.rgb_map_aligned[row, col]:.4g}"
        text += f" · 3D {prediction.map_3d[row, col]:.4g}"
    return text


class _Section(QFrame):
    """A titled grid of label/value rows; values are kept by key for updates and tests."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("section")
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(10, 8, 10, 8)
        self.grid.setHorizontalSpacing(12)
        self.grid.setVerticalSpacing(3)
        self.heading = QLabel(title)
        self.heading.setObjectName("sectionTitle")
        self.grid.addWidget(self.heading, 0, 0, 1, 3)
        self.values: dict[str, QLabel] = {}
        self._row = 1

    def add_row(self, key: str, label: str, columns: int = 1) -> list[QLabel]:
        name = QLabel(label)
        name.setObjectName("muted")
        self.grid.addWidget(name, self._row, 0)
        cells = []
        for c in range(columns):
            cell = QLabel("—")
            cell.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            cell.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.grid.addWidget(cell, self._row, 1 + c)
            self.values[key if columns == 1 else f"{key}_{c}"] = cell
            cells.append(cell)
        self._row += 1
        return cells

    def add_header(self, *titles: str) -> list[QLabel]:
        heads = []
        for c, text in enumerate(titles):
            head = QLabel(text)
            head.setObjectName("muted")
            head.setAlignment(Qt.AlignmentFlag.AlignRight)
            self.grid.addWidget(head, self._row, 1 + c)
            heads.append(head)
        self._row += 1
        return heads

    def set(self, key: str, text: str, colour: str | None = None) -> None:
        label = self.values[key]
        label.setText(text)
        sheet = f"color: {colour};" if colour else ""
        if label.styleSheet() != sheet:  # restyling is far dearer than comparing
            label.setStyleSheet(sheet)


class InspectorPanel(QWidget):
    """Two sections: the sample (image level) and the selection (region or single pixel)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.sample = _Section("Sample")
        self.sample.add_row("key", "Sample")
        self.sample.add_row("label", "Ground truth")
        self.sample.add_header("score")
        for key, name in (("rgb", "RGB"), ("3d", "3D"), ("fused", "RGB + 3D")):
            self.sample.add_row(key, name)
        self.sample.add_row("decision", "Decision")
        self.sample.add_row("regions", "Regions")
        self.sample.add_row("time", "Inference")

        self.selection = _Section("Selection")
        self.selection.add_row("what", "Selected")
        self.selection.add_row("area", "Area")
        self.selection.add_row("driver", "Driver")
        self.selection_heads = self.selection.add_header("max", "mean")
        for key, name in (("rgb", "RGB"), ("3d", "3D"), ("fused", "Fused")):
            self.selection.add_row(key, name, columns=2)
        self.selection.add_row("xyz", "Point (mm)")
        self.hint = QLabel("Click a pixel or a 3D point to inspect it.")
        self.hint.setObjectName("muted")
        self.hint.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(8)
        layout.addWidget(self.sample)
        layout.addWidget(self.selection)
        layout.addWidget(self.hint)
        layout.addStretch(1)
        self.clear_sample()
        self.clear_selection()

    def bind(self, session: InspectorSession) -> None:
        """Show ``session``'s current sample and selection as they change."""
        events = session.events
        for event in (events.view, events.regions):
            event.connect(lambda view: self.show_view(view, session.thresholds.image))
        events.thresholds.connect(lambda new, old: self._on_thresholds(session.view, new, old))
        events.selection.connect(self.show_selection)

    # ----- sample -----------------------------------------------------------------------------
    def clear_sample(self) -> None:
        for key in self.sample.values:
            self.sample.set(key, "—")

    def _on_thresholds(self, view: View, new: Thresholds, old: Thresholds) -> None:
        if new.image != old.image:  # the decision; the pixel threshold comes with the regions
            self.show_view(view, new.image)

    def show_view(self, view: View, image_threshold: float) -> None:
        if view.ref is None:
            self.clear_sample()
            return
        label = view.ref.label if view.sample is None else view.sample.label
        self.show_sample(view.ref.key, label, view.prediction, image_threshold, view.regions)

    def show_sample(
        self,
        key: str,
        label: int,
        prediction: Prediction | None,
        image_threshold: float,
        regions: RegionSet | None = None,
    ) -> None:
        self.sample.set("key", key)
        label_text = {0: "good", 1: "defective"}.get(label, "unknown")
        label_colour = {0: style.NORMAL, 1: style.ANOMALY}.get(label)
        self.sample.set("label", label_text, label_colour)
        if prediction is None:
            for k in ("rgb", "3d", "fused", "decision", "regions", "time"):
                self.sample.set(k, "—")
            self.sample.set("decision", "not scored yet", style.MUTED)
            return
        self.sample.set("rgb", fmt(prediction.score_rgb))
        self.sample.set("3d", fmt(prediction.score_3d))
        relative = relative_score(prediction.score_fused, image_threshold)
        self.sample.set("fused", f"{fmt(prediction.score_fused)}  ({relative:.2f} × threshold)")
        anomalous = prediction.score_fused >= image_threshold
        self.sample.set(
            "decision",
            f"DEFECT  (≥ {fmt(image_threshold, 3)})"
            if anomalous
            else f"OK  (< {fmt(image_threshold, 3)})",
            style.ANOMALY if anomalous else style.NORMAL,
        )
        self.sample.set("regions", "…" if regions is None else str(len(regions)))
        total = prediction.timings_ms.get("total")
        if total is None and prediction.timings_ms:
            total = float(sum(prediction.timings_ms.values()))
        self.sample.set("time", "—" if total is None else f"{total:.0f} ms")

    # ----- selection --------------------------------------------------------------------------
    def show_selection(self, selection: Selection | None) -> None:
        if selection is None:
            self.clear_selection()
        elif selection.region is not None:
            self.show_region(selection.region, selection.xyz_mm)
        else:
            self.show_local(selection.row, selection.col, selection.scores, selection.xyz_mm)

    def clear_selection(self) -> None:
        for key in self.selection.values:
            self.selection.set(key, "—")
        self.selection.set("what", "nothing", style.MUTED)

    def show_region(self, region: Region, xyz_mm: tuple[float, float, float] | None = None) -> None:
        self.selection.set("what", f"region #{region.label}", style.SELECTION)
        self._set_heads("max", "mean")
        area = f"{region.area_px} px"
        if region.area_mm2 is not None:
            area += f" · {region.area_mm2:.2f} mm²"
        self.selection.set("area", area)
        self.selection.set(
            "driver",
            DRIVER_TEXT.get(region.driver, region.driver),
            DRIVER_COLOUR.get(region.driver),
        )
        for key, peak, mean in (
            ("rgb", region.max_rgb, region.mean_rgb),
            ("3d", region.max_3d, region.mean_3d),
            ("fused", region.max_fused, region.mean_fused),
        ):
            self.selection.set(f"{key}_0", fmt(peak))
            self.selection.set(f"{key}_1", fmt(mean))
        self._set_xyz(xyz_mm)

    def show_local(
        self,
        row: int,
        col: int,
        scores: dict[str, float],
        xyz_mm: tuple[float, float, float] | None = None,
    ) -> None:
        self.selection.set("what", f"pixel ({row}, {col}) · no region", style.TEXT)
        self._set_heads("at pixel", "detail")
        self.selection.set("area", "—")
        self.selection.set("driver", "—")
        self.selection.set("rgb_0", fmt(scores.get("rgb")))
        self.selection.set("rgb_1", f"raw {fmt(scores.get('rgb_raw'), 3)}")
        self.selection.set("3d_0", fmt(scores.get("3d")))
        self.selection.set("3d_1", f"point {fmt(scores.get('point'), 3)}")
        self.selection.set("fused_0", fmt(scores.get("fused")))
        self.selection.set("fused_1", "—")
        self._set_xyz(xyz_mm)

    def _set_heads(self, first: str, second: str) -> None:
        self.selection_heads[0].setText(first)
        self.selection_heads[1].setText(second)

    def _set_xyz(self, xyz_mm: tuple[float, float, float] | None) -> None:
        text = "—" if xyz_mm is None else "  ".join(f"{v:.1f}" for v in xyz_mm)
        self.selection.set("xyz", text)

    def value(self, section: str, key: str) -> str:
        """Displayed text of a field (tests and screenshots read the inspector through this)."""
        return getattr(self, section).values[key].text()
