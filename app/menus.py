"""Menus, toolbar and shortcuts of the main window, and the file choosers behind them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QAction, QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QMessageBox, QToolBar

from mdss_app import style
from mdss_app.dialogs.help_dialogs import quick_start_dialog, shortcuts_dialog
from mdss_app.dialogs.train_dialog import MODEL_FILTER
from mdss_app.feedback import FeedbackController
from mdss_app.panels.roi_editor import RoiController
from mdss_app.settings import workspace

if TYPE_CHECKING:
    from mdss_app.main_window import MainWindow

TEACHER_FILTER = "Teacher weights (*.pth *.pt *.safetensors);;All files (*)"
ABOUT = (
    "<b>mdss inspector</b><br>Memoryless multimodal (RGB + 3D) anomaly detection.<br>"
    "Click a pixel or a 3D point to inspect it. Help ▸ Keyboard shortcuts lists the keys."
)
# Keys handled by the widgets themselves (no action to read them from).
WIDGET_KEYS = [("Up, Down", "Previous / next sample (sample list)")]


# name: (text, shortcut, icon, tip) of every action; build_actions gives each its slot.
ACTIONS: dict[str, tuple[str, QKeySequence.StandardKey | str | None, str, str]] = {
    "open_folder": (
        "&Open folder…", QKeySequence.StandardKey.Open, "folder",
        "Open an MVTec 3D-AD category, a split or a folder of samples",
    ),
    "open_demo": ("Open &demo", None, "demo", "Load the built-in demo category"),
    "export": (
        "&Export results…", "Ctrl+E", "export",
        "Write PNG/TIFF maps per sample and a CSV of scores and decisions",
    ),
    "quit": ("&Quit", QKeySequence.StandardKey.Quit, "", ""),
    "open_model": ("Open &model…", "Ctrl+M", "model", "Load a trained model file"),
    "train": ("&Train…", "Ctrl+T", "train", "Train a model on a dataset"),
    "import_teacher": (
        "Import &teacher…", None, "",
        "Validate a teacher weight file and use it for the next training",
    ),
    "rescore": ("&Score folder", "F5", "run", "Run the model over the samples"),
    "model_info": ("Model &info", None, "", ""),
    "reset_view": (
        "&Reset view", "R", "", "Whole sample again in every view (2D zoom and 3D camera)",
    ),
    "quick_start": ("&Quick start", "F1", "", "Open, train, inspect, threshold, export"),
    "shortcuts": ("&Keyboard shortcuts", None, "", "Every key of the inspector"),
    "about": ("&About", None, "", ""),
}  # fmt: skip


def build_actions(window: MainWindow) -> dict[str, QAction]:
    commands = window.commands
    roi, feedback = install_inspection_tools(window)
    slots = {
        "open_folder": lambda: choose_folder(window),
        "open_demo": commands.start_demo,
        "export": lambda: choose_export_folder(window),
        "quit": window.close,
        "open_model": lambda: choose_model(window),
        "train": lambda: feedback.offer_to(commands.show_train_dialog()),
        "import_teacher": lambda: choose_teacher(window),
        "rescore": commands.start_scoring,
        "model_info": lambda: show_model_info(window),
        "reset_view": window.reset_view,
        "quick_start": lambda: quick_start_dialog(window).open(),
        "shortcuts": lambda: shortcuts_dialog(window, WIDGET_KEYS).open(),
        "about": lambda: QMessageBox.about(window, "About mdss", ABOUT),
    }
    actions = {}
    for name, (text, shortcut, icon, tip) in ACTIONS.items():
        action = QAction(style.icon(icon or "blank"), text, window)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        action.triggered.connect(slots[name])
        actions[name] = action
    actions.update(roi.actions)
    actions["mark_good"] = feedback.action
    return actions


def install_inspection_tools(window: MainWindow) -> tuple[RoiController, FeedbackController]:
    """The ROI editor on the 2D views and "mark as good" on the sample list."""
    window.roi_controller = RoiController(window)
    window.feedback = FeedbackController(window)
    return window.roi_controller, window.feedback


def build_menus(window: MainWindow, actions: dict[str, QAction]) -> QToolBar:
    """The menu bar, the toolbar (returned) and the A/D keys that walk the sample list."""
    menu = window.menuBar()
    groups = {
        "&File": ("open_folder", "open_demo", None, "export", None, "quit"),
        "&Model": (
            "open_model", "save_model", "train", "import_teacher", None, "rescore", "model_info",
        ),
        "&Inspect": ("draw_roi", "exclude_roi", "clear_roi", None, "mark_good"),
    }  # fmt: skip
    for title, names in groups.items():
        submenu = menu.addMenu(title)
        for name in names:
            submenu.addSeparator() if name is None else submenu.addAction(actions[name])
    view_menu = menu.addMenu("&View")
    for dock in window.docks:
        view_menu.addAction(dock.toggleViewAction())
    view_menu.addSeparator()
    view_menu.addAction(actions["reset_view"])
    help_menu = menu.addMenu("&Help")
    for name in ("quick_start", "shortcuts", None, "about"):
        help_menu.addSeparator() if name is None else help_menu.addAction(actions[name])

    toolbar = QToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.setMovable(False)
    toolbar.setIconSize(QSize(18, 18))
    toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    for name in ("open_folder", "open_model", "train", "rescore", "export"):
        toolbar.addAction(actions[name])
    window.addToolBar(Qt.ToolBarArea.TopToolBarArea, toolbar)
    # A/D walk the list like up/down (a QLineEdit with focus still receives the letters).
    for key, delta, text in (("A", -1, "Previous sample"), ("D", 1, "Next sample")):
        shortcut = QShortcut(QKeySequence(key), window)
        shortcut.activated.connect(lambda d=delta: window.sample_list.step(d))
        shortcut.setWhatsThis(text)  # its line in Help ▸ Keyboard shortcuts
    return toolbar


# ----- file choosers and dialogs ---------------------------------------------------------------
def choose_folder(window: MainWindow) -> None:
    start = window.settings.last_folder or str(Path.home())
    folder = QFileDialog.getExistingDirectory(window, "Open sample folder", start)
    if folder:
        window.commands.open_folder(folder)


def choose_model(window: MainWindow) -> None:
    last = window.settings.last_model
    start = str(Path(last).parent) if last else ""
    path, _ = QFileDialog.getOpenFileName(window, "Open model", start, MODEL_FILTER)
    if path:
        window.commands.open_model(path)


def choose_teacher(window: MainWindow) -> None:
    path, _ = QFileDialog.getOpenFileName(window, "Import teacher", "", TEACHER_FILTER)
    if path:
        window.commands.import_teacher(path)


def choose_export_folder(window: MainWindow) -> None:
    if not window.session.predictions:
        window.show_error("Nothing to export", "score the samples first (open a model)")
        return
    start = workspace() / "exports"  # never inside the inspected data by default
    start.mkdir(parents=True, exist_ok=True)
    folder = QFileDialog.getExistingDirectory(window, "Export results to", str(start))
    if folder:
        window.commands.export_results(folder)


def show_model_info(window: MainWindow) -> None:
    session = window.session
    if session.model is None:
        window.show_error("No model", "open or train a model first")
        return
    info = session.model.info()
    lines = [f"<b>{info.get('name', '')}</b> — {session.model_path}"]
    for key in ("preset", "fusion", "device", "image_threshold", "pixel_threshold"):
        lines.append(f"{key}: {info.get(key)}")
    lines.append(f"region of interest: {info.get('roi_text', 'whole image')}")
    lines.append(f"teacher: {info.get('teacher_text', '')}")
    training = info.get("training") or {}
    if training:
        lines.append(
            f"trained on {training.get('n_train', '?')} samples "
            f"({training.get('category', '')}) in {training.get('seconds', '?')} s"
        )
    QMessageBox.information(window, "Model", "<br>".join(lines))


def ask_about_mismatch(window: MainWindow, problem: str) -> None:
    """Model and folder are of different categories: score anyway, train, or open another."""
    box = QMessageBox(
        QMessageBox.Icon.Warning, "Model for another category", problem, parent=window
    )
    score = box.addButton("Score anyway", QMessageBox.ButtonRole.AcceptRole)
    train = box.addButton("Train a model…", QMessageBox.ButtonRole.ActionRole)
    other = box.addButton("Open another model…", QMessageBox.ButtonRole.ActionRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    actions = {
        score: window.commands.start_scoring,
        train: window.commands.show_train_dialog,
        other: window.menu_actions["open_model"].trigger,
    }
    box.buttonClicked.connect(lambda button: actions.get(button, lambda: None)())
    box.open()  # not blocking: background work and the views go on
