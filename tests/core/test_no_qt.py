"""The engine must stay free of Qt: the CLI, tests and scripts use it without a display."""

import subprocess
import sys

BLOCK_QT = r"""
import importlib.abc, pkgutil, sys

class BlockQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"PySide6", "shiboken6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy"}:
            raise ImportError(f"Qt import blocked: {name}")
        return None

sys.meta_path.insert(0, BlockQt())
import tlstudio.core
for info in pkgutil.walk_packages(tlstudio.core.__path__, "tlstudio.core."):
    __import__(info.name)
import tlstudio.cli
print("core-ok", len([m for m in sys.modules if m.startswith("tlstudio.core.")]))
"""


def test_core_imports_with_qt_blocked():
    result = subprocess.run([sys.executable, "-c", BLOCK_QT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("core-ok")
    assert int(result.stdout.split()[1]) >= 10  # every engine module was really imported
