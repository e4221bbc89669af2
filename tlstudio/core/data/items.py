"""What a dataset is made of: labeled images (:class:`Item`), the problems found on the way
(:class:`Problem`), and the one error that makes a whole input unusable."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError
from ...pixels import image_key


class DatasetError(UserError):
    """The input as a whole cannot be used; the message tells the user what to change."""


@dataclass(frozen=True)
class Item:
    """One labeled image. ``group`` keeps related images (one patient) in one split;
    ``frame`` is set for one frame of a multi-frame DICOM taken on its own."""

    path: Path
    label: str
    group: str | None = None
    frame: int | None = None
    # further CSV columns (name, value): subgroups whose results are shown side by side
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        """The image's name in split.json and predictions.csv."""
        return image_key(self.path, self.frame)


@dataclass(frozen=True)
class Problem:
    """Something the user should know about. ``skipped`` files are not used for training."""

    # unreadable | ignored | duplicate | conflict | missing | bad-row | small-class | imbalance
    # | notice (not skipped: something to check, e.g. a CSV read as Latin-1)
    kind: str
    message: str
    path: Path | None = None
    skipped: bool = True

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}{self.message}"


def first_problems_hint(problems: list[Problem], n: int = 3) -> str:
    if not problems:
        return ""
    return " Problems found: " + "; ".join(str(p) for p in problems[:n])
