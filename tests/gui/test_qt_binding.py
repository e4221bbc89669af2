"""The Qt binding itself: PySide6 6.12.0 lost a reference to True on every signal emitted
from Python, so a long session (thousands of progress signals) ended in "Fatal Python error:
bool_dealloc". pyproject.toml excludes it; this test fails on any binding that does it."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Sender(QObject):
    said = Signal(str)


def test_emitting_signals_keeps_every_reference():
    sender, heard = _Sender(), []
    sender.said.connect(heard.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(500):
        sender.said.emit("x")
    assert len(heard) == 500
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert abs(after[0] - before[0]) < 50 and abs(after[1] - before[1]) < 50, (before, after)
