"""Where a run's decoded images live while it trains: in memory when they fit the budget,
otherwise in a memory-mapped file that the operating system pages in and out, so peak memory
stays bounded whatever the dataset size (issue 17: 150,000 images at 256 px are about 30 GB).

The file lives in tlstudio's cache folder and is unlinked as soon as it is mapped (POSIX): it
takes disk space only while the process holds it, and nothing is left behind even after
``kill -9``. Where a mapped file cannot be unlinked (Windows), it is removed by the next
process that finds it and whose owner is gone.

Pages of a mapped file that the process has touched count as its resident memory until it
lets go of them, even though the operating system could drop them at any time (and reading
one row of a file may map a whole 2 MB folio around it): the loops that stream through a
mapped array call :func:`release_mapped` every batch (a fraction of a millisecond), which
hands the pages back to the file cache (the data stays; reading it again pages it in).
"""

from __future__ import annotations

import mmap
import os
import time
import uuid
import weakref

import numpy as np

from ..paths import app_data_dir, process_alive

BUDGET_ENV = "TLSTUDIO_IMAGE_MEMORY_MB"
DEFAULT_BUDGET_MB = 2048  # decoded images held in memory at most; more goes to a mapped file


_MAPPED: list[weakref.ref] = []  # this process's mapped arrays


def release_mapped() -> None:
    """Let go of every page of this process's mapped arrays (their data stays in the file,
    and in the operating system's cache while there is room): what keeps resident memory
    bounded while a loop streams through them."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None:  # not offered here (Windows): the pages stay until memory is short
        return
    _MAPPED[:] = [ref for ref in _MAPPED if ref() is not None]
    for ref in list(_MAPPED):
        handle = getattr(ref(), "_mmap", None)
        if handle is not None:
            try:
                handle.madvise(advice)
            except (OSError, ValueError):  # closed meanwhile
                continue


def _mapped(file, dtype, shape) -> np.memmap:
    array = np.memmap(file, dtype=dtype, mode="w+", shape=shape)
    _MAPPED.append(weakref.ref(array))
    try:
        os.unlink(file)  # the mapping keeps the data; the name goes at once
    except OSError:
        pass  # Windows: removed later by _remove_orphans
    return array


def budget_bytes() -> int:
    value = os.environ.get(BUDGET_ENV)
    try:
        return int(float(value) * 2**20) if value is not None else DEFAULT_BUDGET_MB * 2**20
    except ValueError:
        return DEFAULT_BUDGET_MB * 2**20


def stores_dir():
    return app_data_dir() / "cache" / "stores"


def image_array(n: int, side: int) -> np.ndarray:
    """An ``(n, side, side, 3)`` uint8 array: in memory within the budget, else mapped."""
    shape = (n, side, side, 3)
    if n * side * side * 3 <= budget_bytes():
        return np.zeros(shape, dtype=np.uint8)
    folder = stores_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder)
    return _mapped(folder / f"{os.getpid()}-{uuid.uuid4().hex}.u8", np.uint8, shape)


def _remove_orphans(folder) -> None:
    """Mapped files of processes that are gone (or, where that cannot be told, a day old)."""
    for file in folder.glob("*.u8"):
        try:
            pid = int(file.name.split("-", 1)[0])
            stale = pid != os.getpid() and (not process_alive(pid)
                                            or time.time() - file.stat().st_mtime > 86400)
            if stale:
                file.unlink()
        except (ValueError, OSError):
            continue


def mapped_floats(shape: tuple[int, ...]) -> np.ndarray | None:
    """A float32 array of ``shape`` in a memory-mapped file (unlinked once mapped), or None
    when the cache's disk lacks the room (with a margin of 1 GB)."""
    import shutil

    folder = stores_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder)
    need = int(np.prod(shape)) * 4
    if shutil.disk_usage(folder).free < need + 2**30:
        return None
    return _mapped(folder / f"{os.getpid()}-{uuid.uuid4().hex}.u8", np.float32, shape)
