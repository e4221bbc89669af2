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


CLOSE_DURING_A_LONG_BATCH = r"""
import sys, time
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox
from tlstudio.core.data.dataset import scan
from tlstudio.core.data.synthetic import make_shapes_folder
from tlstudio.core.engine import callbacks
from tlstudio.gui import app as app_module, main_window

real = callbacks.ProgressEvents.on_batch_end

def long_batch(self, *args):
    real(self, *args)
    time.sleep(4.0)  # the loop sees Stop only when this batch is over

callbacks.ProgressEvents.on_batch_end = long_batch
QMessageBox.question = staticmethod(lambda *a, **k: QMessageBox.StandardButton.Yes)

class Window(main_window.MainWindow):
    def __init__(self):
        super().__init__()
        self.state.set_dataset(scan(make_shapes_folder(Path(sys.argv[1]), per_class=8)))
        self.closing_at = None
        QTimer.singleShot(0, self.begin)

    def begin(self):
        self.train_page.on_enter()
        self.train_page.epochs.setValue(3)
        self.train_page.start()
        self.train_page.runner.worker.batch_done.connect(self.close_now)

    def close_now(self, _info):
        if self.closing_at is None:
            self.closing_at = time.monotonic()
            self.close()
            print(f"closed after {time.monotonic() - self.closing_at:.1f} s", flush=True)

main_window.MainWindow = Window
code = app_module.run_app()
print("run_app returned", code, flush=True)
sys.exit(code)
"""


def test_closing_during_a_long_batch_waits_and_exits_cleanly(tmp_path):
    """The window waits for the batch to end and the run to be saved, however long that
    takes, then the process exits normally: no abort, no thread destroyed while running."""
    import os
    import subprocess
    import sys

    from tlstudio.core.runs.history import list_runs

    home = tmp_path / "home"
    env = dict(os.environ, TLSTUDIO_HOME=str(home), QT_QPA_PLATFORM="offscreen",
               HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", CLOSE_DURING_A_LONG_BATCH,
                           str(tmp_path / "shapes")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Destroyed while thread" not in done.stderr
    waited = float(done.stdout.split("closed after ")[1].split()[0])
    assert waited >= 3.0, "the window closed before the batch ended"
    assert "run_app returned 0" in done.stdout
    runs = list_runs(home / "runs")
    assert len(runs) == 1 and runs[0].resumable  # the stopped run can be resumed
