"""``mdss-gui`` as users start it: the screenshot mode, and no torch on the UI thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

pytestmark = pytest.mark.gui
REPO = Path(__file__).resolve().parents[2]


def test_torch_is_only_imported_off_the_ui_thread(tmp_path):
    # A meta-path finder notes which thread first imports torch (the device probe does, in
    # a background task); the window itself must be built without it.
    code = (
        "import sys, threading, time\n"
        "seen = []\n"
        "class Spy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            seen.append(threading.current_thread() is threading.main_thread())\n"
        "        return None\n"
        "sys.meta_path.insert(0, Spy())\n"
        "from PySide6.QtWidgets import QApplication\n"
        "from mdss_app.main_window import MainWindow\n"
        "from mdss_app.style import apply_style\n"
        "app = QApplication([])\n"
        "apply_style(app)\n"
        "w = MainWindow(enable_vtk=False, interactive=False)\n"
        "w.show()\n"
        "assert 'torch' not in sys.modules, 'window construction imported torch'\n"
        "end = time.monotonic() + 60\n"
        "while w.commands.devices[0][1] == 'Auto' and time.monotonic() < end:\n"
        "    app.processEvents()\n"
        "    time.sleep(0.05)\n"
        "w.close()\n"
        "assert seen and not any(seen), seen\n"
        "print('ok', w.commands.devices[0][1])\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=90
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("ok Auto (")


def test_screenshot_mode_writes_the_whole_window(qapp, gui_dataset, gui_model_file, tmp_path):
    from mdss_app.main import main

    png = tmp_path / "window.png"
    code = main(["--screenshot", str(png), str(gui_dataset), "--model", str(gui_model_file)])
    assert code == 0
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1680, 1020)


def test_bad_arguments_are_rejected():
    from mdss_app.main import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args(["--no-such-option"])
    args = build_parser().parse_args(["data", "--model", "m.mdss"])
    assert args.path == "data" and args.model == "m.mdss" and not args.demo


def test_without_a_display_it_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    done = subprocess.run(
        [sys.executable, "-m", "mdss_app.main", "--demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "no display found" in done.stderr and "xvfb-run" in done.stderr
