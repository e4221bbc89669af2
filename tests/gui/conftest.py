"""GUI fixtures: the main window offscreen, with its settings in a temporary folder."""

from __future__ import annotations

import gc
import warnings
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from ..conftest import make_shapes_folder


@pytest.fixture
def window(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("TLSTUDIO_HOME", str(tmp_path / "home"))
    # pytest-qt closes the window after a test; a training still running then must not wait
    # for an answer to "Stop training and close?" (tests that ask patch it themselves)
    from PySide6.QtWidgets import QMessageBox

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    from tlstudio.gui.app import create_app
    from tlstudio.gui.main_window import MainWindow

    create_app()
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    if win.train_page.running:
        win.train_page.stop_and_wait()
    gc.collect()  # on the GUI thread: Qt garbage must never be left to a worker thread


def drop_on(widget, paths: list[Path]) -> None:
    """What the window receives when the user drops files from a file manager."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the QPoint overload is the one
        enter = QDragEnterEvent(QPoint(20, 20), Qt.DropAction.CopyAction, mime, buttons,
                                modifiers)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted(), "the window refused the drag"
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, buttons, modifiers)
    QApplication.sendEvent(widget, drop)


@pytest.fixture
def shapes(tmp_path) -> Path:
    return make_shapes_folder(tmp_path / "shapes", per_class=24)
