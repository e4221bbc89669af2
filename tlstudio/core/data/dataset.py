"""DatasetIndex: what a user's folder or CSV holds, and what is wrong with it.

A scan never fails on one bad file: each problem becomes a :class:`Problem` with a reason,
and the file is left out of ``items``. It fails (``DatasetError``) only when the whole input
is unusable — the folder is missing, holds no class sub-folders, or fewer than two classes
remain — with a message that says what to do. Nothing is ever written into the user's folder.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from .cache import ImageCache
from .images import ImageReadError, looks_like_image, read_image
from .preprocess import Preprocessing

Progress = Callable[[int, int], None]

# A class this many times larger than the smallest is flagged as strongly imbalanced.
IMBALANCE_RATIO = 4.0
MIN_IMAGES_PER_CLASS = 2


class DatasetError(UserError):
    """The input as a whole cannot be used; the message tells the user what to change."""


@dataclass(frozen=True)
class Item:
    """One labeled image. ``group`` keeps related images (one patient) in one split."""

    path: Path
    label: str
    group: str | None = None


@dataclass(frozen=True)
class Problem:
    """Something the user should know about. ``skipped`` files are not used for training."""

    kind: str  # unreadable | ignored | duplicate | conflict | missing | small-class | imbalance
    message: str
    path: Path | None = None
    skipped: bool = True

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}{self.message}"


@dataclass
class DatasetIndex:
    """The usable images of a dataset, their classes, and the problems found on the way."""

    root: Path
    items: list[Item]
    classes: list[str]
    problems: list[Problem] = field(default_factory=list)
    source: str = "folder"  # folder | csv

    @property
    def has_groups(self) -> bool:
        return any(item.group is not None for item in self.items)

    def counts(self) -> dict[str, int]:
        """Images per class, in class order."""
        counter = Counter(item.label for item in self.items)
        return {name: counter.get(name, 0) for name in self.classes}

    def targets(self) -> list[int]:
        """Class index of every item, aligned with ``items``."""
        position = {name: i for i, name in enumerate(self.classes)}
        return [position[item.label] for item in self.items]

    def summary(self) -> str:
        counts = ", ".join(f"{name}: {n}" for name, n in self.counts().items())
        skipped = sum(1 for p in self.problems if p.skipped and p.path is not None)
        return (
            f"{len(self.items)} images in {len(self.classes)} classes ({counts}); "
            f"{skipped} files skipped, {len(self.problems)} problems reported"
        )


def scan(path: str | Path, progress: Progress | None = None, workers: int = 4,
         prep: Preprocessing | None = None, cache: ImageCache | None = None) -> DatasetIndex:
    """Scan a folder-per-class tree or a ``path,label[,group]`` CSV file.

    Every image is decoded once to prove it readable. With ``prep`` and ``cache``, that
    decode also fills the image cache for this preprocessing, so training reads it back
    instead of decoding again; a file already in the cache (same path, size and time) is
    not decoded at all.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(
            f"'{path}' does not exist. Choose a folder of class sub-folders or a CSV."
        )
    if path.is_file():
        if path.suffix.lower() not in (".csv", ".tsv", ".txt"):
            raise DatasetError(
                f"'{path.name}' is a file but not a CSV. Choose a folder with one sub-folder "
                "per class, or a CSV with columns path,label[,group]."
            )
        candidates, problems = _candidates_from_csv(path)
        source = "csv"
    else:
        candidates, problems = _candidates_from_folder(path)
        source = "folder"
    items, read_problems = _verify(candidates, progress, workers, prep, cache)
    problems += read_problems
    items, dup_problems = _drop_duplicates(items)
    problems += dup_problems
    classes, class_problems = _check_classes(items)
    problems += class_problems
    items = [item for item in items if item.label in classes]
    if len(classes) < 2:
        raise DatasetError(
            f"'{path}' has {len(classes)} usable class(es); at least 2 classes with "
            f"{MIN_IMAGES_PER_CLASS}+ readable images each are needed."
            + _first_problems_hint(problems)
        )
    return DatasetIndex(root=path, items=items, classes=classes, problems=problems, source=source)


def _first_problems_hint(problems: list[Problem], n: int = 3) -> str:
    if not problems:
        return ""
    return " Problems found: " + "; ".join(str(p) for p in problems[:n])


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _candidates_from_folder(root: Path) -> tuple[list[Item], list[Problem]]:
    if not root.is_dir():
        raise DatasetError(f"'{root}' is not a folder.")
    class_dirs = sorted(
        (d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
        key=lambda d: d.name.lower(),
    )
    loose = [f for f in root.iterdir() if f.is_file() and looks_like_image(f)]
    if not class_dirs:
        if loose:
            raise DatasetError(
                f"'{root}' holds images but no class sub-folders. Put each class's images in a "
                f"sub-folder named after the class, e.g. {root / 'cats'} and {root / 'dogs'}."
            )
        raise DatasetError(
            f"'{root}' has no class sub-folders with images. Choose a folder with one "
            "sub-folder per class."
        )
    items: list[Item] = []
    problems = [
        Problem("ignored", "image outside any class sub-folder, not used", f) for f in loose
    ]
    for class_dir in class_dirs:
        for f in sorted(p for p in class_dir.rglob("*") if p.is_file()):
            if _is_hidden(f, root):
                problems.append(Problem("ignored", "hidden file, not used", f))
            elif not looks_like_image(f):
                problems.append(
                    Problem("ignored", f"not an image file ({f.suffix or 'no extension'})", f)
                )
            else:
                items.append(Item(f, class_dir.name))
    return items, problems


_PATH_COLUMNS = ("path", "file", "filename", "image", "filepath")
_LABEL_COLUMNS = ("label", "class", "category", "target")
_GROUP_COLUMNS = ("group", "patient", "patient_id", "subject", "group_id")


def _read_csv_rows(csv_path: Path) -> list[list[str]]:
    text = csv_path.read_text(encoding="utf-8-sig", errors="replace")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in row)]


def _candidates_from_csv(csv_path: Path) -> tuple[list[Item], list[Problem]]:
    rows = _read_csv_rows(csv_path)
    if not rows:
        raise DatasetError(f"'{csv_path.name}' is empty. Expected columns path,label[,group].")
    header = [c.strip().lower() for c in rows[0]]
    columns = _csv_columns(header)
    first_line = 1
    if columns is None:
        columns = (0, 1, 2 if len(rows[0]) > 2 else None)
    else:
        rows, first_line = rows[1:], 2
    path_col, label_col, group_col = columns
    base = csv_path.parent
    items: list[Item] = []
    problems: list[Problem] = []
    for line_no, row in enumerate(rows, start=first_line):
        if len(row) <= max(path_col, label_col):
            problems.append(Problem("missing", f"line {line_no}: needs a path and a label"))
            continue
        raw_path, label = row[path_col].strip(), row[label_col].strip()
        if not raw_path or not label:
            problems.append(Problem("missing", f"line {line_no}: empty path or label"))
            continue
        group = row[group_col].strip() if group_col is not None and len(row) > group_col else None
        file = Path(raw_path).expanduser()
        if not file.is_absolute():
            file = base / file
        if not file.is_file():
            problems.append(Problem("missing", f"line {line_no}: file not found", file))
            continue
        items.append(Item(file, label, group or None))
    return items, problems


def _csv_columns(header: list[str]) -> tuple[int, int, int | None] | None:
    def find(names: Iterable[str]) -> int | None:
        return next((header.index(n) for n in names if n in header), None)

    path_col, label_col = find(_PATH_COLUMNS), find(_LABEL_COLUMNS)
    if path_col is None or label_col is None:
        return None
    return path_col, label_col, find(_GROUP_COLUMNS)


def _check_one(item: Item, prep: Preprocessing | None = None,
               cache: ImageCache | None = None) -> tuple[Item, str | None, str | None]:
    """Decode fully (truncation shows only at the end) and hash the bytes for duplicates."""
    try:
        if cache is None or prep is None:
            read_image(item.path)
        elif not cache.has(item.path, prep):
            cache.store(item.path, prep, read_image(item.path))
        digest = hashlib.blake2b(item.path.read_bytes(), digest_size=16).hexdigest()
    except ImageReadError as exc:
        return item, None, str(exc)
    except OSError as exc:
        return item, None, f"cannot read file ({exc})"
    return item, digest, None


def _verify(
    candidates: list[Item], progress: Progress | None, workers: int,
    prep: Preprocessing | None, cache: ImageCache | None,
) -> tuple[list[tuple[Item, str]], list[Problem]]:
    good: list[tuple[Item, str]] = []
    problems: list[Problem] = []
    total = len(candidates)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        checked = pool.map(lambda c: _check_one(c, prep, cache), candidates)
        for done, (item, digest, error) in enumerate(checked, 1):
            if error is not None:
                problems.append(Problem("unreadable", error, item.path))
            else:
                good.append((item, digest))
            if progress is not None:
                progress(done, total)
    return good, problems


def _drop_duplicates(checked: list[tuple[Item, str]]) -> tuple[list[Item], list[Problem]]:
    """Identical files: one copy kept inside a class; all dropped when classes disagree."""
    by_digest: dict[str, list[Item]] = defaultdict(list)
    for item, digest in checked:
        by_digest[digest].append(item)
    keep: list[Item] = []
    problems: list[Problem] = []
    for item, digest in checked:
        copies = by_digest[digest]
        labels = sorted({c.label for c in copies})
        if len(labels) > 1:
            problems.append(
                Problem(
                    "conflict",
                    "same image appears in classes " + ", ".join(labels) + "; not used",
                    item.path,
                )
            )
        elif copies[0] is item:
            keep.append(item)
        else:
            problems.append(
                Problem("duplicate", f"duplicate of {copies[0].path.name}; not used", item.path)
            )
    return keep, problems


def _check_classes(items: list[Item]) -> tuple[list[str], list[Problem]]:
    counts = Counter(item.label for item in items)
    problems: list[Problem] = []
    classes = []
    for name in sorted(counts, key=str.lower):
        if counts[name] < MIN_IMAGES_PER_CLASS:
            problems.append(
                Problem(
                    "small-class",
                    f"class '{name}' has {counts[name]} readable image(s); at least "
                    f"{MIN_IMAGES_PER_CLASS} are needed, so it is left out",
                )
            )
        else:
            classes.append(name)
    if len(classes) >= 2:
        sizes = {name: counts[name] for name in classes}
        big, small = max(sizes, key=sizes.get), min(sizes, key=sizes.get)
        if sizes[big] >= IMBALANCE_RATIO * sizes[small]:
            problems.append(
                Problem(
                    "imbalance",
                    f"strong class imbalance: '{big}' has {sizes[big]} images, '{small}' only "
                    f"{sizes[small]}; consider class weights and read per-class recall",
                    skipped=False,
                )
            )
    return classes, problems
