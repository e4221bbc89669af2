"""Splits are seeded, stratified and never divide a group (a patient) between parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlstudio.core.data.dataset import DatasetError, DatasetIndex, Item
from tlstudio.core.data.split import make_split


def _index(per_class=(40, 20), groups_of=None):
    items = []
    for c, n in enumerate(per_class):
        for i in range(n):
            group = f"c{c}-g{i // groups_of}" if groups_of else None
            items.append(Item(Path(f"/data/{c}/{i}.png"), f"class{c}", group))
    return DatasetIndex(Path("/data"), items, [f"class{c}" for c in range(len(per_class))])


def test_seeded_and_stratified():
    index = _index()
    a, b = make_split(index, 0.25, seed=3), make_split(index, 0.25, seed=3)
    assert a == b
    assert make_split(index, 0.25, seed=4) != a
    targets = index.targets()
    val_counts = [sum(1 for p in a.val if targets[p] == c) for c in (0, 1)]
    assert val_counts == [10, 5]
    assert sorted(a.train + a.val) == list(range(60))


def test_groups_never_straddle_parts():
    index = _index((60, 60), groups_of=4)
    split = make_split(index, 0.2, 0.2, seed=0)
    group_of = {pos: index.items[pos].group for pos in range(len(index.items))}
    parts = [{group_of[p] for p in part} for part in (split.train, split.val, split.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert 20 <= len(split.val) <= 28 and 20 <= len(split.test) <= 28


def test_every_class_is_trained_and_validated():
    split = make_split(_index((30, 2)), 0.1)
    targets = _index((30, 2)).targets()
    assert {targets[p] for p in split.val} == {0, 1}
    assert {targets[p] for p in split.train} == {0, 1}


def test_impossible_fraction_is_refused():
    with pytest.raises(DatasetError):
        make_split(_index(), 0.0)
    with pytest.raises(DatasetError):
        make_split(_index(), 0.6, 0.5)
