"""Closing the studio: nothing may be left for Python's shutdown to tear down (a window kept
alive by its own signal connections, or a pool thread still running Python code), since
that made the process crash now and then on its way out."""

from __future__ import annotations

import threading
import time

import shiboken6
from PySide6.QtCore import QThreadPool

from tlstudio.gui import app as app_module
from tlstudio.gui import main_window
from tlstudio.gui.workers import run_task


def test_run_app_deletes_the_window_and_waits_for_background_work(qapp, monkeypatch, tmp_path):
    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path / "home"))
    windows: list = []

    class RecordedWindow(main_window.MainWindow):
        def __init__(self):
            super().__init__()
            windows.append(self)

    monkeypatch.setattr(main_window, "MainWindow", RecordedWindow)
    task_done = threading.Event()

    def slow_task():
        time.sleep(0.5)
        task_done.set()

    def user_closes_the_window():
        run_task(slow_task)  # still running when the event loop ends
        windows[0].close()
        return 0

    monkeypatch.setattr(qapp, "exec", user_closes_the_window)
    assert app_module.run_app() == 0
    assert len(windows) == 1
    assert not shiboken6.isValid(windows[0]), "the window outlived run_app"
    assert task_done.is_set(), "run_app returned while a background task was running"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
