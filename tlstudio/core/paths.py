"""tlstudio's own folder: runs, caches, settings, the sample CSV — never the user's data."""

from __future__ import annotations

import os
from pathlib import Path


def app_data_dir() -> Path:
    """``$TLSTUDIO_HOME``, else ``$XDG_DATA_HOME/tlstudio`` or ``~/.local/share/tlstudio``."""
    home = os.environ.get("TLSTUDIO_HOME")
    if home:
        return Path(home)
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "tlstudio"
