"""Split: which images train the model, which measure it.

Seeded (the same seed gives the same split), stratified (each class keeps its share in
every part) and group-aware: when items carry a group (a patient, a specimen), a group is
never divided between parts, so the validation score is not inflated by near-copies.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..words import count as count_of
from .dataset import DatasetError, DatasetIndex


@dataclass(frozen=True)
class Split:
    """Positions into ``DatasetIndex.items`` for each part."""

    train: list[int]
    val: list[int]
    test: list[int]

    def as_dict(self) -> dict[str, list[int]]:
        return {"train": self.train, "val": self.val, "test": self.test}


def make_split(
    index: DatasetIndex, val_fraction: float = 0.2, test_fraction: float = 0.0, seed: int = 0
) -> Split:
    """Divide the dataset; every class gets at least one training and one validation image."""
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"validation fraction must be between 0 and 1, got {val_fraction}")
    if not 0.0 <= test_fraction < 1.0 or val_fraction + test_fraction >= 1.0:
        raise DatasetError("validation + test fractions must leave images for training")
    targets = index.targets()
    parts = _divide(index, range(len(index.items)), val_fraction, test_fraction,
                    np.random.default_rng(seed))
    _check_coverage(index, parts, targets)
    return Split(parts["train"], parts["val"], parts["test"])


def _units_by_class(index: DatasetIndex, positions) -> dict[int, list[list[int]]]:
    """What gets assigned to a part: single images, or whole groups (a patient), each under
    its most common class (groups are usually one class)."""
    targets = index.targets()
    units: dict[object, list[int]] = defaultdict(list)
    for pos in positions:
        item = index.items[pos]
        units[item.group if item.group is not None else ("__single__", pos)].append(pos)
    by_class: dict[int, list[list[int]]] = defaultdict(list)
    for members in units.values():
        majority = np.bincount([targets[m] for m in members]).argmax()
        by_class[int(majority)].append(members)
    return by_class


def _divide(index: DatasetIndex, positions, val_fraction: float, test_fraction: float,
            rng: np.random.Generator) -> dict[str, list[int]]:
    by_class = _units_by_class(index, positions)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for cls in sorted(by_class):
        remaining = [by_class[cls][i] for i in rng.permutation(len(by_class[cls]))]
        total = sum(len(unit) for unit in remaining)
        for part, fraction in (("val", val_fraction), ("test", test_fraction)):
            want, taken = fraction * total, 0
            # Take whole units while the part is under its share (always one, so every
            # class is measured), and always leave at least one unit for training.
            while fraction > 0 and len(remaining) > 1 and (
                taken == 0 or taken + len(remaining[0]) / 2 <= want
            ):
                unit = remaining.pop(0)
                parts[part].extend(unit)
                taken += len(unit)
        for unit in remaining:
            parts["train"].extend(unit)
    for name in parts:
        parts[name].sort()
    return parts


def make_folds(index: DatasetIndex, folds: int, val_fraction: float = 0.15,
               seed: int = 0) -> list[Split]:
    """Stratified, group-aware k-fold cross-validation: every image (every patient) is in
    exactly one fold's test part; the rest of each fold is split into training and a
    validation part that chooses the epoch, threshold and temperature."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise DatasetError(f"--folds must be a whole number of at least 2, not {folds!r}")
    rng = np.random.default_rng(seed)
    targets = index.targets()
    assigned: list[list[int]] = [[] for _ in range(folds)]
    for cls, units in sorted(_units_by_class(index, range(len(index.items))).items()):
        if len(units) < folds:
            raise DatasetError(
                f"class {index.classes[cls]} has "
                f"{count_of(len(units), 'image or group', 'images or groups')}, fewer than "
                f"the {folds} folds: use fewer folds or add images")
        order = [units[i] for i in rng.permutation(len(units))]
        order.sort(key=len, reverse=True)  # big groups first, then fill the smallest fold
        count = [0] * folds
        for unit in order:
            k = min(range(folds), key=lambda f: (count[f], f))
            assigned[k].extend(unit)
            count[k] += len(unit)
    out = []
    for k in range(folds):
        rest = sorted(p for j in range(folds) if j != k for p in assigned[j])
        parts = _divide(index, rest, val_fraction, 0.0, rng)
        parts["test"] = sorted(assigned[k])
        try:
            _check_coverage(index, parts, targets)
        except DatasetError as exc:
            raise DatasetError(f"fold {k + 1}: {exc}") from None
        out.append(Split(parts["train"], parts["val"], parts["test"]))
    return out


def _check_coverage(index: DatasetIndex, parts: dict[str, list[int]], targets: list[int]) -> None:
    for name in ("train", "val"):
        present = {targets[p] for p in parts[name]}
        missing = [index.classes[c] for c in range(len(index.classes)) if c not in present]
        if missing:
            raise DatasetError(
                f"the {name} part has no images of class(es) {', '.join(missing)}; "
                "add images (or groups) to those classes or change the validation fraction"
            )


def split_from_paths(index: DatasetIndex, parts: dict[str, list[str]]) -> Split:
    """The split a run recorded (``split.json``: file paths per part), on a fresh scan.

    Fails when a recorded file is no longer among the usable images: continuing on other
    data would give numbers that belong to neither run.
    """
    position = {item.key: pos for pos, item in enumerate(index.items)}
    out: dict[str, list[int]] = {}
    missing: list[str] = []
    for name in ("train", "val", "test"):
        paths = parts.get(name, [])
        missing += [p for p in paths if p not in position]
        out[name] = sorted(position[p] for p in paths if p in position)
    if missing:
        raise DatasetError(
            f"the dataset changed since this run started: {len(missing)} of its images are "
            f"missing or unreadable now (first: {missing[0]}). Restore them, or start a new run."
        )
    return Split(out["train"], out["val"], out["test"])
