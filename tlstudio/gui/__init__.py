"""The studio: PySide6 + pyqtgraph over tlstudio.core. Shows state, collects choices, and runs
core work off the GUI thread; it owns no logic the CLI lacks."""
