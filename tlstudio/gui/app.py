"""Starting the studio: the QApplication, the style sheet, the main window."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path


def resource_path(name: str) -> Path | None:
    """A file from the top-level resources/ folder (source tree or installed copy)."""
    here = Path(__file__).resolve().parents[2] / "resources" / name
    if here.exists():
        return here
    try:
        found = resources.files("tlstudio").joinpath("resources", name)
        return Path(str(found)) if found.is_file() else None
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def create_app(argv: list[str] | None = None):
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("tlstudio")
    app.setOrganizationName("tlstudio")
    app.setDesktopFileName("tlstudio")  # Wayland/X11 match the window to tlstudio.desktop
    icon = resource_path("tlstudio.svg")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    style = resource_path("style.qss")
    if style is not None:
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    return app


def destroy_now(widget) -> None:
    """Delete a top-level widget and everything inside it now, while Qt is still running.

    Lambdas connected inside a window hold references to the window, a cycle through C++
    that Python's garbage collector cannot see; left alone, the window lives until the
    interpreter exits, where PySide tears objects down in no set order and the process can
    crash on its way out (seen as an occasional abort after closing the studio).
    """
    import shiboken6

    if shiboken6.isValid(widget):
        shiboken6.delete(widget)


def run_app(sample: bool = False) -> int:
    app = create_app()
    from .main_window import MainWindow
    from .workers import finish_background_tasks

    window = MainWindow()
    window.show()
    if sample:
        window.data_page.load_sample()
    code = app.exec()
    destroy_now(window)
    if not finish_background_tasks():
        # a scan or model build is still running: leave without tearing Python down under it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
