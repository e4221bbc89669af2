"""What every wizard step offers the main window."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from ..state import StudioState


class Page(QWidget):
    """A wizard step. ``blocker()`` says why Next is disabled (None when it is not)."""

    title = ""
    changed = Signal()  # something that may change blocker() happened

    def __init__(self, state: StudioState, parent=None):
        super().__init__(parent)
        self.state = state

    def blocker(self) -> str | None:
        return None

    def on_enter(self) -> None:
        """Called each time the step is shown."""

    def accepts_drops(self) -> bool:
        return False

    def drop_paths(self, paths) -> None:
        """Files or folders dropped anywhere on the window while this step is shown."""
