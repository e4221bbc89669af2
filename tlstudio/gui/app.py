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


class GuiThreadGarbageCollector:
    """Python's cyclic garbage collector runs in whichever thread happens to allocate; when
    that is the training thread and the garbage holds Qt objects (old plot items, dialogs),
    their destructors run there and can deadlock or crash Qt. So automatic collection is
    off while the studio runs, and a timer on the GUI thread collects instead (the approach
    of pyqtgraph's GarbageCollector)."""

    def __init__(self, app, interval_ms: int = 500):
        import gc

        from PySide6.QtCore import QTimer

        self._gc = gc
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(app)
        self.timer.timeout.connect(self.check)
        self.timer.start(interval_ms)

    def check(self) -> None:
        counts = self._gc.get_count()
        for generation in (2, 1, 0):
            if counts[generation] > self.threshold[generation]:
                self._gc.collect(generation)
                return


def create_app(argv: list[str] | None = None):
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(argv or sys.argv[:1])
    if getattr(app, "_tlstudio_gc", None) is None:
        app._tlstudio_gc = GuiThreadGarbageCollector(app)
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


def _quit_on_signals(app, window) -> None:
    """SIGTERM (a logout, a service manager) and Ctrl-C close the studio the way its window
    does, without the question: training stops after its batch and saves first. Python
    handles signals only between bytecodes, so a timer gives it a moment every 200 ms."""
    import signal

    from PySide6.QtCore import QTimer

    def close(_signum, _frame) -> None:
        QTimer.singleShot(0, window.quit_now)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, close)
    tick = QTimer(app)
    tick.timeout.connect(lambda: None)
    tick.start(200)


def run_app(sample: bool = False) -> int:
    from ..core.logs import setup_logging

    setup_logging()
    app = create_app()
    from .main_window import MainWindow
    from .workers import finish_background_tasks

    window = MainWindow()
    window.show()
    _quit_on_signals(app, window)
    if sample:
        window.data_page.load_sample()
    code = app.exec()
    window.stop_training_and_wait()  # however the loop ended, never leave a thread running
    destroy_now(window)
    if not finish_background_tasks():
        # a scan or model build is still running: leave without tearing Python down under it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code
