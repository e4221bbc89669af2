"""Decoding every image once into the prepared uint8 squares training reads from.

Decoding JPEG/PNG is the slowest part of a small-data epoch, so it happens once per
training run here, in a few threads (Pillow releases the GIL while decoding), instead of
once per image per epoch. Files that fail now (changed since the scan) are reported and
left out rather than stopping the run.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .images import ImageReadError, read_image
from .preprocess import Preprocessing, prepare


def decode_images(
    paths: list[Path],
    prep: Preprocessing,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 4,
    check: Callable[[], None] | None = None,
) -> tuple[np.ndarray, dict[int, str]]:
    """All images as an ``(N, S, S, 3)`` uint8 array, and ``{position: reason}`` of failures.

    Failed positions hold zeros; callers drop them. ``check`` is called between images
    (the trainer's stop/pause checkpoint).
    """
    side = prep.prepared_size
    out = np.zeros((len(paths), side, side, 3), dtype=np.uint8)
    failures: dict[int, str] = {}

    def work(pos: int) -> tuple[int, str | None]:
        try:
            out[pos] = prepare(read_image(paths[pos]), prep)
        except ImageReadError as exc:
            return pos, str(exc)
        return pos, None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for done, (pos, error) in enumerate(pool.map(work, range(len(paths))), 1):
            if error is not None:
                failures[pos] = error
            if progress is not None:
                progress(done, len(paths))
            if check is not None:
                check()
    return out, failures
