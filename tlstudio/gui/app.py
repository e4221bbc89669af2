"""Starting the studio: the QApplication, the style sheet, the main window."""

from __future__ import annotations

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
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    app.setApplicationName("tlstudio")
    app.setOrganizationName("tlstudio")
    style = resource_path("style.qss")
    if style is not None:
        app.setStyleSheet(style.read_text(encoding="utf-8"))
    return app


def run_app(sample: bool = False) -> int:
    app = create_app()
    from .main_window import MainWindow

    window = MainWindow()
    window.show()
    if sample:
        window.data_page.load_sample()
    return app.exec()
