"""ImageCache: decoded, resized images on disk, so a dataset is decoded once, not every run.

Each image is stored as the prepared uint8 square (see ``preprocess.prepare``) in tlstudio's
own cache folder — never the user's — under a key made of the file's identity (resolved
path, size, modification time) and the preparation (side, resize method, pixel rule and
window). A
changed file gets a new key and is decoded again; unchanged files are read back in
milliseconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..paths import app_data_dir
from .images import ImageReadError, read_image
from .preprocess import Preprocessing, prepare
from .store import release_mapped

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    return app_data_dir() / "cache" / "images"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    failures: int = 0


class ImageCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.stats = CacheStats()

    def key(self, path: Path, prep: Preprocessing, frame: int | None = None) -> str:
        st = path.stat()
        identity = (f"{path.resolve()}|{frame}|{st.st_size}|{st.st_mtime_ns}|"
                    f"{prep.prepared_size}|{prep.interpolation}|{prep.pixel_rule}|{prep.window}")
        return hashlib.blake2b(identity.encode(), digest_size=20).hexdigest()

    def _file(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def _entry(self, path: Path, prep: Preprocessing, frame: int | None = None) -> Path:
        try:
            return self._file(self.key(path, prep, frame))
        except OSError as exc:
            raise ImageReadError(f"cannot open file ({exc.strerror or exc})") from exc

    def _load(self, file: Path, prep: Preprocessing) -> np.ndarray | None:
        side = prep.prepared_size
        if not file.exists():
            return None
        try:
            square = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as exc:
            log.info("damaged cache entry %s rebuilt: %s", file, exc)
            return None
        ok = square.shape == (side, side, 3) and square.dtype == np.uint8
        return square if ok else None

    def has(self, path: Path, prep: Preprocessing, frame: int | None = None) -> bool:
        return self._load(self._entry(path, prep, frame), prep) is not None

    def store(self, path: Path, prep: Preprocessing, image,
              frame: int | None = None) -> np.ndarray:
        """Prepare a decoded picture and keep it; a full or read-only disk only costs speed."""
        square = prepare(image, prep)
        file = self._entry(path, prep, frame)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npy")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            np.save(tmp, square, allow_pickle=False)
            os.replace(tmp, file)
        except OSError as exc:
            log.warning("image cache not written (%s): %s", file, exc)
            tmp.unlink(missing_ok=True)  # never leave a half-written entry behind
        return square

    def get(self, path: Path, prep: Preprocessing,
            frame: int | None = None) -> tuple[np.ndarray, bool]:
        """The prepared square of one image and whether it came from the cache."""
        square = self._load(self._entry(path, prep, frame), prep)
        if square is not None:
            return square, True
        return self.store(path, prep, read_image(path, prep.window, frame), frame), False


def decode_images(
    paths: list[Path | tuple[Path, int | None]],
    prep: Preprocessing,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
    check: Callable[[], None] | None = None,
    cache: ImageCache | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """All images as an ``(N, S, S, 3)`` uint8 array, and ``{position: reason}`` of failures.
    An entry is a file, or (file, frame) for one frame of a multi-frame DICOM.

    With a cache, unchanged files are read back instead of decoded. Failed positions hold
    zeros; callers drop them. ``check`` is the trainer's stop/pause checkpoint. ``out`` is
    where the images go (e.g. a memory-mapped ``store.image_array``); by default a new array.
    """
    side = prep.prepared_size
    if out is None:
        out = np.zeros((len(paths), side, side, 3), dtype=np.uint8)
    failures: dict[int, str] = {}

    def work(pos: int) -> tuple[int, str | None, bool]:
        path, frame = paths[pos] if isinstance(paths[pos], tuple) else (paths[pos], None)
        try:
            if cache is not None:
                out[pos], hit = cache.get(path, prep, frame)
            else:
                out[pos], hit = prepare(read_image(path, prep.window, frame), prep), False
        except ImageReadError as exc:
            return pos, str(exc), False
        return pos, None, hit

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (pos, error, hit) in enumerate(pool.map(work, range(len(paths))), 1):
            if cache is not None:
                if error is not None:
                    cache.stats.failures += 1
                elif hit:
                    cache.stats.hits += 1
                else:
                    cache.stats.misses += 1
            if error is not None:
                failures[pos] = error
            if progress is not None:
                progress(done, len(paths))
            if done % 64 == 0:
                release_mapped()  # written pages go to the file (``store``)
            if check is not None:
                check()
    return out, failures
