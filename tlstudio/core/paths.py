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


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (POSIX). On Windows ``os.kill`` would end it, so
    every process counts as alive there: leftovers are then removed by age instead."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's
    return True
