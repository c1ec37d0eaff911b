""" "Mark as good": false alarms collected as extra normal samples for the next training.

A marked sample's files are copied (never moved) into the per-user workspace, in the layout the
dataset reader expects for normal training samples::

    <workspace>/feedback/<category>/train/good/rgb/NNN.png
    <workspace>/feedback/<category>/train/good/xyz/NNN.tiff
    <workspace>/feedback/<category>/train/good/notes/NNN.json   source files, key and date

so ``mdss train DATA --extra-good <workspace>/feedback/<category>`` and the train dialog's
"include N samples marked as good" read them like any category. Unmarking deletes the copies.
:class:`FeedbackStore` is plain Python; :class:`FeedbackController` puts it on the window.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence

from mdss_app.settings import workspace
from mdss_core import api
from mdss_core.api import SampleRef

if TYPE_CHECKING:
    from mdss_app.dialogs.train_dialog import TrainDialog
    from mdss_app.main_window import MainWindow

KINDS = ("rgb", "xyz")


def category_of(dataset: api.DatasetIndex) -> str:
    """The folder name marks of ``dataset`` go to (its category, else its folder's name)."""
    name = dataset.category or dataset.root.name or "samples"
    return re.sub(r"[^\w.-]+", "_", name)


def source_key(ref: SampleRef) -> str:
    """What identifies a sample's files across sessions: its RGB file's absolute path."""
    return str(Path(ref.rgb_path).absolute())


class FeedbackStore:
    """The samples marked as good, per category, under ``root`` (``<workspace>/feedback``)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else workspace() / "feedback"
        self._marks: dict[str, dict[str, str]] = {}  # category → {source key: copy id}

    def category_folder(self, category: str) -> Path:
        return self.root / category

    def good_folder(self, category: str) -> Path:
        return self.root / category / "train" / "good"

    def marks(self, category: str) -> dict[str, str]:
        """``{source key: copy id}`` of ``category``, read from the notes once."""
        if category not in self._marks:
            found = {}
            for note in sorted((self.good_folder(category) / "notes").glob("*.json")):
                try:
                    found[json.loads(note.read_text("utf-8"))["source_rgb"]] = note.stem
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a note damaged by hand: its copy stays, it is just not listed
            self._marks[category] = found
        return self._marks[category]

    def count(self, category: str) -> int:
        return len(self.marks(category))

    def is_marked(self, category: str, ref: SampleRef) -> bool:
        return source_key(ref) in self.marks(category)

    def mark(self, category: str, ref: SampleRef) -> Path:
        """Copy ``ref``'s image and cloud as the next normal sample; returns its RGB copy."""
        marks, good = self.marks(category), self.good_folder(category)
        if source_key(ref) in marks:
            return self._copy_path(category, marks[source_key(ref)], "rgb")
        copy_id = self._next_id(category)
        written: list[Path] = []
        try:
            for kind, source in zip(KINDS, (ref.rgb_path, ref.xyz_path), strict=True):
                target = good / kind / f"{copy_id}{Path(source).suffix.lower()}"
                written.append(api.copy_file_atomic(source, target))
            note = {
                "source_rgb": source_key(ref),
                "source_xyz": str(Path(ref.xyz_path).absolute()),
                "source_key": ref.key,
                "category": category,
                "marked_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            api.write_text_atomic(good / "notes" / f"{copy_id}.json", json.dumps(note, indent=2))
        except Exception:
            for path in written:  # no half-marked sample: a copy without its note is removed
                path.unlink(missing_ok=True)
            raise
        marks[source_key(ref)] = copy_id
        return written[0]

    def unmark(self, category: str, ref: SampleRef) -> bool:
        """Delete the copies of ``ref`` (never its own files); False when it was not marked."""
        copy_id = self.marks(category).pop(source_key(ref), None)
        if copy_id is None:
            return False
        good = self.good_folder(category)
        for kind in KINDS:
            for path in (good / kind).glob(f"{copy_id}.*"):
                path.unlink(missing_ok=True)
        (good / "notes" / f"{copy_id}.json").unlink(missing_ok=True)
        return True

    def _next_id(self, category: str) -> str:
        good = self.good_folder(category)
        taken = [
            int(p.stem)
            for kind in (*KINDS, "notes")
            if (good / kind).is_dir()
            for p in (good / kind).iterdir()
            if p.stem.isdigit()
        ]
        return f"{max(taken, default=-1) + 1:03d}"

    def _copy_path(self, category: str, copy_id: str, kind: str) -> Path:
        found = sorted((self.good_folder(category) / kind).glob(f"{copy_id}.*"))
        return found[0] if found else self.good_folder(category) / kind


class FeedbackController(QObject):
    """The "Mark as good" action (G, Inspect menu, sample list's context menu), the list's
    markers and the train dialog's option to include the marked samples."""

    def __init__(self, window: MainWindow, store: FeedbackStore | None = None) -> None:
        super().__init__(window)
        self.window, self.session = window, window.session
        self.store = store or FeedbackStore()
        self.action = QAction("Mark as &good (false alarm)", window)
        self.action.setShortcut(QKeySequence("G"))
        self.action.setStatusTip(
            "Copy the selected sample into the workspace as a normal part for the next training"
            " (press again to unmark)"
        )
        self.action.triggered.connect(self.toggle_current)
        table = window.sample_list.view
        table.addAction(self.action)
        table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.session.events.dataset.connect(lambda _d: self._refresh())
        self.session.events.view.connect(lambda _v: self._update_action())
        self._update_action()

    @property
    def category(self) -> str | None:
        dataset = self.session.dataset
        return None if dataset is None else category_of(dataset)

    def toggle_current(self) -> bool | None:
        """Mark the shown sample as good, or unmark it; returns whether it is marked now."""
        ref, category = self.session.view.ref, self.category
        if ref is None or category is None:
            self.window.show_error("Mark as good", "select a sample first")
            return None
        try:
            if self.store.is_marked(category, ref):
                self.store.unmark(category, ref)
                self.window.notify(f"{ref.key}: unmarked (its copy was removed)")
            else:
                copy = self.store.mark(category, ref)
                self.window.notify(f"{ref.key}: marked as good → {copy.parent.parent}", 15000)
        except (api.MDSSError, OSError) as exc:
            self.window.show_error("Mark as good", api.describe(exc) or str(exc))
            return None
        self._refresh(ref.key)
        return self.store.is_marked(category, ref)

    def _refresh(self, key: str | None = None) -> None:
        category = self.category
        marked = (lambda ref: self.store.is_marked(category, ref)) if category else None
        self.window.sample_list.set_marks(marked, key)
        self._update_action()
        dialog = self.window.commands.train_dialog
        if dialog is not None:
            self.offer_to(dialog)

    def _update_action(self) -> None:
        ref, category = self.session.view.ref, self.category
        marked = ref is not None and category is not None and self.store.is_marked(category, ref)
        self.action.setEnabled(ref is not None)
        self.action.setText("Unmark as good" if marked else "Mark as &good (false alarm)")

    def offer_to(self, dialog: TrainDialog) -> None:
        """Tell the train dialog how many marked samples the next training can include."""
        category = self.category
        count = self.store.count(category) if category else 0
        folder = str(self.store.category_folder(category)) if category else ""
        dialog.set_marked_good(folder, count)
