"""The engine: everything tlstudio can do, without Qt.

Nothing in this package may import PySide6, pyqtgraph or any other GUI toolkit;
tests/core/test_no_qt.py enforces it.
"""
