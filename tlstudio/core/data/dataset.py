"""DatasetIndex: what a user's folder or CSV holds, and what is wrong with it.

Folders are walked in :mod:`.folders`, CSVs read in :mod:`.csv_table`; here every image
found is decoded once to prove it readable, duplicates and too-small classes are set aside.
A scan never fails on one bad file: each problem becomes a :class:`Problem` with a reason,
and the file is left out of ``items``. It fails (``DatasetError``) only when the whole input
is unusable — the folder is missing, holds no class sub-folders, or fewer than two classes
remain — with a message that says what to do. Nothing is ever written into the user's folder.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...pixels import dicom
from ..pseudonyms import pseudonym_key
from ..words import count
from .cache import ImageCache
from .csv_table import candidates_from_csv
from .folders import candidates_from_folder
from .images import ImageReadError, read_image
from .items import DatasetError, Item, Problem, first_problems_hint
from .preprocess import Preprocessing

Progress = Callable[[int, int], None]

# A class this many times larger than the smallest is flagged as strongly imbalanced.
IMBALANCE_RATIO = 4.0
MIN_IMAGES_PER_CLASS = 2


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

    def groups_per_class(self) -> dict[str, int]:
        """Distinct groups (patients) per class, in class order."""
        seen: dict[str, set] = {name: set() for name in self.classes}
        for item in self.items:
            if item.group is not None:
                seen[item.label].add(item.group)
        return {name: len(groups) for name, groups in seen.items()}

    def formats(self) -> dict[str, int]:
        """How many images of each kind: DICOM by content, others by their file name."""
        counter = Counter("DICOM" if dicom.is_dicom(item.path)
                          else item.path.suffix.lower().lstrip(".").upper() or "?"
                          for item in self.items)
        return dict(counter.most_common())

    def unused(self) -> list[Problem]:
        """Every file or CSV row that is not used, each with its reason."""
        return [p for p in self.problems if p.skipped and p.kind != "small-class"]

    def summary(self) -> str:
        counts = ", ".join(f"{name}: {n}" for name, n in self.counts().items())
        return (
            f"{len(self.items)} images in {len(self.classes)} classes ({counts}); "
            f"{len(self.unused())} files or rows not used, {len(self.problems)} problems "
            "reported"
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
        candidates, problems = candidates_from_csv(path)
        source = "csv"
    else:
        candidates, problems = candidates_from_folder(path)
        source = "folder"
    if prep is not None and prep.frames == "all":
        candidates, frame_problems = _every_frame(candidates)
        problems += frame_problems
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
            + first_problems_hint(problems)
        )
    return DatasetIndex(root=path, items=items, classes=classes, problems=problems, source=source)


def _every_frame(candidates: list[Item]) -> tuple[list[Item], list[Problem]]:
    """Each frame of a multi-frame DICOM as an image of its own, grouped by its patient or,
    without one, by its file: frames of one file never straddle a split."""
    out: list[Item] = []
    problems: list[Problem] = []
    for item in candidates:
        if not dicom.is_dicom(item.path):
            out.append(item)
            continue
        try:
            count = dicom.frames_of(item.path)
        except dicom.DicomError as exc:
            problems.append(Problem("unreadable", str(exc), item.path))
            continue
        if count == 1:
            out.append(item)
            continue
        group = item.group or dicom.patient_group(item.path, pseudonym_key()) or \
            "file-" + hashlib.blake2b(str(item.path).encode(), digest_size=8).hexdigest()
        out += [replace(item, group=group, frame=k) for k in range(count)]
    return out, problems


def _check_one(item: Item, prep: Preprocessing | None = None,
               cache: ImageCache | None = None) -> tuple[Item, str | None, str | None]:
    """Decode fully (truncation shows only at the end) and hash the bytes for duplicates."""
    try:
        window = prep.window if prep is not None else "file"
        if cache is None or prep is None:
            read_image(item.path, window, item.frame)
        elif not cache.has(item.path, prep, item.frame):
            cache.store(item.path, prep, read_image(item.path, window, item.frame), item.frame)
        if dicom.is_dicom(item.path):  # a patient stays in one part; subgroups for results
            group, subgroups = dicom.grouping(item.path, pseudonym_key())
            item = replace(item, group=item.group or group,
                           attributes=item.attributes + tuple(subgroups.items()))
        content = item.path.read_bytes() + f"|frame {item.frame}".encode()
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
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
                where = item.path if item.frame is None else Path(item.key)
                problems.append(Problem("unreadable", error, where))
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
                    f"class '{name}' has {count(counts[name], 'readable image')}; at least "
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
