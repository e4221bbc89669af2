"""One process trains into a run folder at a time.

An OS file lock on ``run/.lock`` (``flock`` on Linux/macOS, ``msvcrt.locking`` on Windows):
the operating system drops it when the process ends in any way, kill -9 included, so a
crashed run never leaves a folder locked for ever. The file records who holds it.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from .record import RunError

LOCK = ".lock"


class RunBusy(RunError):
    """Another process is training into this folder."""


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self._fh = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            _lock(fh)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunBusy(f"'{self.path.parent}' is in use: {holder} is training into it. "
                          "Wait for it to end, or choose another output folder.") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"tlstudio pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        self._fh = fh
        return self

    @staticmethod
    def holder(run_dir: Path) -> str | None:
        """Who trains into ``run_dir`` right now, or None when nobody does."""
        path = Path(run_dir) / LOCK
        if not path.is_file():
            return None
        with open(path, "a+", encoding="utf-8") as fh:
            try:
                _lock(fh)
            except OSError:
                fh.seek(0)
                return fh.read().strip() or "another process"
            _unlock(fh)
        return None

    def release(self) -> None:
        if self._fh is not None:
            _unlock(self._fh)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock(fh) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)

    def _unlock(fh) -> None:
        fh.seek(0)
        msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
else:
    import fcntl

    def _lock(fh) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fh) -> None:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
