"""Decoded images beyond the memory budget go to a memory-mapped file (the same arrays, so
the same training), and so do frozen-layer outputs beyond theirs; nothing left on disk."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.data.dataset import scan
from tlstudio.core.data.split import make_split
from tlstudio.core.data.store import BUDGET_ENV, stores_dir
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.engine.events import Control
from tlstudio.core.engine.prepare import prepare_data
from tlstudio.core.models.backbones import get_spec
from tlstudio.core.runs.training import train


def _prepared(index, config):
    prep = get_spec(config.backbone).preprocessing()
    split = make_split(index, config.val_fraction, config.test_fraction, config.seed)
    return prepare_data(index, split, prep, config, Control(), lambda e: None)


def test_mapped_images_are_the_same_and_leave_nothing_behind(shapes_folder, monkeypatch,
                                                             tmp_path):
    index = scan(shapes_folder)
    bad = index.items[3].path  # an image that stops decoding after the scan
    config = TrainConfig(mode="linear-probe", use_cache=False).resolved()
    bad.write_bytes(bad.read_bytes()[:60])
    in_memory = _prepared(index, config)
    monkeypatch.setenv(BUDGET_ENV, "0")
    mapped = _prepared(index, config)
    assert isinstance(mapped.data.train_images.base, np.memmap) or isinstance(
        mapped.data.train_images, np.memmap)
    assert not isinstance(in_memory.data.train_images, np.memmap)
    for a, b in ((in_memory.data.train_images, mapped.data.train_images),
                 (in_memory.data.val_images, mapped.data.val_images),
                 (in_memory.test_images, mapped.test_images)):
        assert a.shape == b.shape and np.array_equal(a, b)  # the failed image closed up
    assert sum(mapped.sizes().values()) == len(index.items) - 1
    assert not list(stores_dir().glob("*.u8"))  # unlinked as soon as it was mapped


def test_frozen_layer_outputs_past_the_budget_are_kept_on_disk(shapes_folder, tmp_path):
    """A fine-tune of the last stage whose cached activations exceed the budget spills them
    to a mapped file instead of running the whole network: the same run, said in the log."""
    from tlstudio.core.engine import events as ev

    base = dict(mode="fine-tune", freeze="last-1", epochs=1, use_cache=False,
                test_fraction=0.0, augmentation="none")
    first = train(TrainConfig(**base), shapes_folder, tmp_path / "memory")
    said = []
    second = train(TrainConfig(**base, prefix_cache_mb=0), shapes_folder, tmp_path / "disk",
                   [lambda e: said.append(e.message) if isinstance(e, ev.Notice) else None])
    assert any("frozen layers computed once" in m for m in said)  # not the full network
    assert not any("running the whole network" in m for m in said)
    assert abs(second.metrics["val_loss"] - first.metrics["val_loss"]) < 1e-4
    assert not list(stores_dir().glob("*.u8"))


def _resident_mapped_mb() -> float:
    """Resident memory of this process's mapped stores (their files, deleted once mapped)."""
    try:
        lines = open("/proc/self/smaps").read().splitlines()
    except OSError:
        pytest.skip("no /proc/self/smaps here")
    total, inside = 0, False
    for line in lines:
        head = line.split()
        if "-" in head[0] and len(head) >= 5:  # a mapping's first line
            inside = "stores" in line and ".u8" in line
        elif inside and head[0] == "Rss:":
            total += int(head[1])
    return total / 1024


def test_streaming_a_mapped_array_keeps_resident_memory_bounded(monkeypatch):
    """Pages of a mapped array count as the process's memory until it lets go: training
    and inference stream through a 560 MB array while holding far less of it."""
    from tlstudio.core.data.store import image_array
    from tlstudio.core.engine.batches import ImageBatches
    from tlstudio.core.engine.device import pick_device
    from tlstudio.core.engine.inference import eval_inputs

    monkeypatch.setenv(BUDGET_ENV, "10")
    prep = get_spec("efficientnet_lite0").preprocessing()
    before = _resident_mapped_mb()
    images = image_array(3000, prep.prepared_size)  # 560 MB: mapped
    assert isinstance(images, np.memmap)
    for start in range(0, 3000, 100):  # as decoding writes it
        images[start : start + 100] = start % 251
    setup = pick_device("cpu")
    peak = 0.0
    for _ in eval_inputs(images, prep, setup, 32):  # features, validation, predict
        peak = max(peak, _resident_mapped_mb() - before)
    batches = ImageBatches(images, np.zeros(3000, dtype=np.int64), images[:10], prep, setup,
                           "none", 32, 0)
    for _ in batches:  # a training epoch
        peak = max(peak, _resident_mapped_mb() - before)
    assert peak < 200, f"{peak:.0f} MB of the mapped array stayed resident"
    assert int(images[2999, 0, 0, 0]) == 2900 % 251  # the data itself is all there
