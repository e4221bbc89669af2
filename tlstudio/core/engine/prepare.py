"""From a dataset index and its split to the arrays the loop trains on: each image decoded
and resized once (read back from the cache when it already was).

The images of all parts go into one array, train then validation then test, each part a
contiguous slice of it (a view, never a copy): in memory when they fit the budget, otherwise
memory-mapped (``data.store``), so a dataset larger than memory trains with bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.cache import ImageCache, decode_images
from ..data.dataset import DatasetIndex
from ..data.preprocess import Preprocessing
from ..data.split import Split
from ..data.store import image_array, release_mapped
from .config import TrainConfig
from .events import Control, Event, Notice, StageProgress
from .loop import TrainingData

PARTS = ("train", "val", "test")


@dataclass
class PreparedData:
    data: TrainingData
    test_images: np.ndarray
    test_targets: np.ndarray
    positions: dict[str, list[int]]  # index positions actually used, per part

    def sizes(self) -> dict[str, int]:
        return {name: len(pos) for name, pos in self.positions.items()}


def image_cache(config: TrainConfig) -> ImageCache | None:
    return ImageCache(config.cache_dir) if config.use_cache else None


def prepare_data(index: DatasetIndex, split: Split, prep: Preprocessing, config: TrainConfig,
                 control: Control, emit: Callable[[Event], None]) -> PreparedData:
    parts = split.as_dict()
    order = [pos for name in PARTS for pos in parts[name]]
    cache = image_cache(config)
    squares, failures = decode_images(
        [(index.items[p].path, index.items[p].frame) for p in order], prep,
        workers=config.workers,
        progress=lambda d, t: emit(StageProgress("decoding images", d, t)),
        check=control.checkpoint, cache=cache,
        out=image_array(len(order), prep.prepared_size),
    )
    if cache is not None and cache.stats.hits:
        emit(Notice(f"{cache.stats.hits} of {len(order)} images read from the cache"))
    for k, reason in failures.items():
        emit(Notice(f"{index.items[order[k]].key}: {reason}; skipped"))
    where = {pos: k for k, pos in enumerate(order)}
    targets = index.targets()
    arrays, positions, row = {}, {}, 0
    for name in PARTS:
        keep = [p for p in parts[name] if where[p] not in failures]
        for p in keep:  # failed images closed up, in place: each part stays one slice
            if where[p] != row:  # rows only move up: copying in order is safe
                squares[row] = squares[where[p]]
            row += 1
            if row % 1024 == 0:
                release_mapped()
        start = row - len(keep)
        arrays[name] = (squares[start:row], np.array([targets[p] for p in keep],
                                                     dtype=np.int64))
        positions[name] = keep
    if len(arrays["train"][1]) == 0 or len(arrays["val"][1]) == 0:
        raise ValueError("no readable images left for training or validation")
    data = TrainingData(*arrays["train"], *arrays["val"], len(index.classes))
    return PreparedData(data, *arrays["test"], positions)
