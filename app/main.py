"""Entry point of ``mdss-gui``: parse arguments, build the window, load what was asked for."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdss-gui", description="mdss inspector: multimodal (RGB + 3D) anomaly inspection."
    )
    parser.add_argument("path", nargs="?", help="folder to open (category, split or samples)")
    parser.add_argument("--model", help="model file to load")
    parser.add_argument("--demo", action="store_true", help="open the built-in demo")
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="render the window with the top sample's strongest defect inspected, save, exit",
    )
    parser.add_argument(
        "--timeout", type=float, default=1200.0, help="seconds --screenshot may wait (default 1200)"
    )
    return parser


def _prefer_xcb_for_vtk() -> None:
    # VTK's Linux render window is X11: under Wayland run Qt through XWayland so they match.
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        if os.environ.get("WAYLAND_DISPLAY") and os.environ.get("DISPLAY"):
            os.environ["QT_QPA_PLATFORM"] = "xcb"


def missing_display() -> str | None:
    """Why no window can open here (Linux without X11/Wayland and no Qt platform chosen), else
    None: Qt would abort with a long xcb message instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "mdss-gui: no display found (DISPLAY/WAYLAND_DISPLAY unset): run it on a desktop, "
        "or under a virtual one: xvfb-run -a mdss-gui …"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    problem = missing_display()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    _prefer_xcb_for_vtk()

    from PySide6.QtWidgets import QApplication

    from mdss_app.main_window import MainWindow
    from mdss_app.settings import APPLICATION, ORGANIZATION
    from mdss_app.style import apply_style

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_style(app)

    screenshot = args.screenshot is not None
    settings = None
    if screenshot:
        # A throw-away settings file: screenshots get the default layout and leave the
        # user's saved layout alone.
        import tempfile

        from PySide6.QtCore import QSettings

        from mdss_app.settings import AppSettings

        scratch = tempfile.mkdtemp(prefix="mdss-gui-")
        settings = AppSettings(
            QSettings(os.path.join(scratch, "s.ini"), QSettings.Format.IniFormat)
        )
    window = MainWindow(settings=settings, interactive=not screenshot)
    if screenshot:  # pictures of one size whatever the screen (the window fits it otherwise)
        from mdss_app.window_layout import PREFERRED_SIZE

        window.resize(PREFERRED_SIZE)
    window.show()

    if args.model:
        window.commands.open_model(args.model)
    if args.path and not args.demo:
        window.commands.open_folder(args.path)
    else:
        window.commands.start_demo()

    if screenshot:
        from mdss_app.screenshot import ScreenshotDirector

        director = ScreenshotDirector(window, args.screenshot, args.timeout)
        director.start()
        code = app.exec()
        window.close()
        return code
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
