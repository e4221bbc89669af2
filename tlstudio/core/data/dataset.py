"""DatasetIndex: what a user's folder or CSV holds, and what is wrong with it.

A scan never fails on one bad file: each problem becomes a :class:`Problem` with a reason,
and the file is left out of ``items``. It fails (``DatasetError``) only when the whole input
is unusable — the folder is missing, holds no class sub-folders, or fewer than two classes
remain — with a message that says what to do. Nothing is ever written into the user's folder.
"""

from __future__ import annotations

import codecs
import csv
import errno
import hashlib
import io
import os
import stat
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from ...errors import UserError
from ...pixels import dicom, image_key
from ..pseudonyms import pseudonym_key
from ..words import count
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
        candidates, problems = _candidates_from_csv(path)
        source = "csv"
    else:
        candidates, problems = _candidates_from_folder(path)
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
            + _first_problems_hint(problems)
        )
    return DatasetIndex(root=path, items=items, classes=classes, problems=problems, source=source)


def _first_problems_hint(problems: list[Problem], n: int = 3) -> str:
    if not problems:
        return ""
    return " Problems found: " + "; ".join(str(p) for p in problems[:n])


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _link_trouble(link: Path, parent_real: Path) -> str | None:
    """Why a symlink cannot be used, or None. ``rglob``/``is_file`` would hide these silently.

    A link to a folder that contains the link's own folder is a loop: following it would
    scan the same files again and again.
    """
    try:
        target_stat = os.stat(link)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "link loop, not used"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "broken link, not used"
        return f"link cannot be followed ({exc.strerror}), not used"
    if stat.S_ISDIR(target_stat.st_mode):
        if parent_real.is_relative_to(os.path.realpath(link)):
            return "link loop, not used"
    return None


def _walk_class_folder(root: Path, class_dir: Path) -> tuple[list[Path], list[Problem]]:
    """Files under one class folder (links followed once), and every entry that is not used.

    Walks by hand instead of ``rglob``: that skips linked sub-folders and hides dangling
    links, and following links blindly never ends on a loop.
    """
    files: list[Path] = []
    found: list[tuple[Path, str, str]] = []  # (path, kind, message): sorted with the files
    seen: set[str] = set()
    stack = [class_dir]
    while stack:
        folder = stack.pop()
        real = os.path.realpath(folder)
        if real in seen:
            found.append((folder, "ignored", "folder already scanned through another link, "
                                             "not used"))
            continue
        seen.add(real)
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            found.append((folder, "unreadable", f"folder cannot be read ({exc.strerror}), "
                                                "not used"))
            continue
        for entry in entries:
            path = folder / entry.name
            hidden = _is_hidden(path, root)
            trouble = _link_trouble(path, Path(real)) if entry.is_symlink() else None
            if trouble is not None:
                found.append((path, "ignored" if hidden else "unreadable",
                              "hidden file, not used" if hidden else trouble))
            elif entry.is_dir():
                stack.append(path)
            elif hidden:
                found.append((path, "ignored", "hidden file, not used"))
            elif not entry.is_file():
                found.append((path, "ignored", "not a regular file, not used"))
            elif not looks_like_image(path):
                found.append(
                    (path, "ignored", f"not an image file ({path.suffix or 'no extension'})")
                )
            else:
                files.append(path)
    files.sort()
    found.sort(key=lambda f: f[0])
    return files, [Problem(kind, message, path) for path, kind, message in found]


def list_images(folder: Path) -> tuple[list[Path], list[Problem]]:
    """Every image under ``folder`` (sub-folders and links followed once), sorted, and every
    entry that is not used with its reason: an unlabeled folder's contents."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"'{folder}' is not a folder.")
    return _walk_class_folder(folder, folder)


def _candidates_from_folder(root: Path) -> tuple[list[Item], list[Problem]]:
    if not root.is_dir():
        raise DatasetError(f"'{root}' is not a folder.")
    root_real = Path(os.path.realpath(root))
    problems: list[Problem] = []
    class_dirs: list[Path] = []
    for entry in sorted(root.iterdir()):
        if entry.name.startswith("."):
            continue
        trouble = _link_trouble(entry, root_real) if entry.is_symlink() else None
        if trouble is not None:
            problems.append(Problem("unreadable", trouble, entry))
        elif entry.is_dir():
            class_dirs.append(entry)
    class_dirs.sort(key=lambda d: d.name.lower())
    loose = [f for f in root.iterdir() if f.is_file() and looks_like_image(f)]
    if not class_dirs:
        if loose:
            raise DatasetError(
                f"'{root}' holds images but no class sub-folders. Put each class's images in a "
                f"sub-folder named after the class, e.g. {root / 'cats'} and {root / 'dogs'}, "
                "or label them in tlstudio (the Label step; `tlstudio suggest` proposes "
                "which to label first)."
            )
        raise DatasetError(
            f"'{root}' has no class sub-folders with images. Choose a folder with one "
            "sub-folder per class." + _first_problems_hint(problems)
        )
    items: list[Item] = []
    problems += [
        Problem("ignored", "image outside any class sub-folder, not used", f) for f in loose
    ]
    for class_dir in class_dirs:
        files, found = _walk_class_folder(root, class_dir)
        problems += found
        items += [Item(f, class_dir.name) for f in files]
    return items, problems


_PATH_COLUMNS = ("path", "file", "filename", "image", "filepath")
_LABEL_COLUMNS = ("label", "class", "category", "target")
_GROUP_COLUMNS = ("group", "patient", "patient_id", "subject", "group_id")
_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}
_CSV_HELP = "tlstudio reads comma, semicolon or tab separated files with columns path,label[,group]"


@dataclass(frozen=True)
class _CsvRow:
    """One CSV record with the lines it came from (a quoted field may span lines)."""

    first: int
    last: int
    cells: tuple[str, ...]


def _decode_csv(csv_path: Path) -> tuple[str, list[Problem]]:
    """The file's text. Non-UTF-8 is read as Latin-1 with a notice, never with silent U+FFFD."""
    data = csv_path.read_bytes()
    name = csv_path.name
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text, notices = data.decode("utf-16"), []
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"'{name}' starts like UTF-16 text but cannot be decoded ({exc.reason}); "
                "save it as CSV UTF-8."
            ) from None
    else:
        try:
            text, notices = data.decode("utf-8-sig"), []
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            body = data.removeprefix(codecs.BOM_UTF8)
            try:
                text = body.decode("cp1252")
            except UnicodeDecodeError:
                text = body.decode("latin-1")
            notices = [Problem(
                "notice",
                f"not UTF-8 (first at line {line}); read as Latin-1 (Windows-1252). Check that "
                "accented names look right, or save the file as CSV UTF-8",
                csv_path, skipped=False,
            )]
    if "\x00" in text:
        raise DatasetError(
            f"'{name}' holds NUL bytes, so it is not a text file; save it as CSV UTF-8."
        )
    return text, notices


def _detect_separator(text: str, prefer_tab: bool) -> str:
    """Comma, semicolon or tab: a header naming the columns decides, else the data lines do.

    ``csv.Sniffer`` guesses from character counts, falls back to comma silently, and takes
    the decimal comma of ``scan 0,5mm.png;disc`` for the separator.
    """
    lines = [line for line in text.splitlines() if line.strip()][:50]
    order = ["\t", ",", ";"] if prefer_tab else [",", ";", "\t"]

    def split(sep: str, line: str) -> list[str]:
        return [c.strip() for c in next(csv.reader([line], delimiter=sep), [])]

    for sep in order:
        header = [c.lower() for c in split(sep, lines[0])]
        if len(header) > 1 and _csv_columns(header) is not None:
            return sep

    def score(sep: str) -> tuple[int, ...]:
        rows = [split(sep, line) for line in lines]
        images = sum(len(r) > 1 and looks_like_image(Path(r[0])) for r in rows)
        width = len(rows[0])
        same = sum(len(r) == width for r in rows) if width > 1 else 0
        return images, same, sum(len(r) > 1 for r in rows), -order.index(sep)

    return max(order, key=score)


def _quote_error(name: str, first: int, last: int, exc: csv.Error) -> str:
    if last > first or "end of data" in str(exc):
        return _unmatched_quote(name, first, last)
    return (
        f"'{name}' line {first}: bad quoting ({exc}); put quotes only around a whole field, "
        'and write a quote inside a quoted field as ""'
    )


def _unmatched_quote(name: str, first: int, last: int) -> str:
    if last <= first:
        return f"'{name}' line {first}: unmatched quote (\"); fix the quoting"
    return (
        f"'{name}' line {first}: unmatched quote (\") — the rows from line {first} to {last} "
        "would be read as one; fix the quoting"
    )


def _read_csv_rows(csv_path: Path) -> tuple[list[_CsvRow], str, list[Problem]]:
    """Records with real line numbers, the separator, and decoding notices.

    ``strict=True`` turns broken quoting into an error that names the line instead of
    rows silently merged; blank lines (only separators and spaces) carry nothing and are
    left out.
    """
    text, notices = _decode_csv(csv_path)
    if not text.strip():
        return [], ",", notices
    sep = _detect_separator(text, prefer_tab=csv_path.suffix.lower() == ".tsv")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    rows: list[_CsvRow] = []
    last = 0
    while True:
        first = last + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DatasetError(_quote_error(csv_path.name, first, reader.line_num, exc)) from None
        last = reader.line_num
        if any(c.strip() for c in cells):
            rows.append(_CsvRow(first, last, tuple(cells)))
    return rows, sep, notices


def _swallowed_rows(row: _CsvRow, used: set[int], sep: str) -> bool:
    """Whether a field took in following lines: an unmatched quote, not a real value.

    A path, label or group never holds a line break; another column may (a multi-line
    note), unless the lines it took in look like rows of their own.
    """
    for i, cell in enumerate(row.cells):
        if "\n" not in cell and "\r" not in cell:
            continue
        if i in used or any(sep in line for line in cell.splitlines()[1:]):
            return True
    return False


def _one_column_error(name: str, first_line: str) -> DatasetError:
    found = "; its lines seem separated by '|'" if "|" in first_line else ""
    return DatasetError(
        f"'{name}': every line has one column (no comma, semicolon or tab found{found}); "
        f"{_CSV_HELP}."
    )


def _file_trouble(file: Path) -> tuple[str, str] | None:
    """(kind, reason) when a listed path is not a usable file, else None."""
    try:
        info = file.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "unreadable", "link loop, not used"
        if file.is_symlink():
            return "unreadable", "broken link, not used"
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing", "file not found"
        return "unreadable", f"cannot be opened ({exc.strerror})"
    if stat.S_ISDIR(info.st_mode):
        return "ignored", "is a folder, not an image file"
    if not stat.S_ISREG(info.st_mode):
        return "ignored", "not a regular file"
    return None


def read_label_rows(csv_path: str | Path) -> tuple[list[Item], list[Problem]]:
    """A ``path,label[,group]`` CSV's rows as items (paths resolved as for a dataset, files
    not yet decoded) and the rows left out with their reasons; no class or size rules, for
    a few labels of images checked elsewhere (``tlstudio adapt --labels``)."""
    path = Path(csv_path).expanduser()
    if not path.is_file():
        raise DatasetError(f"'{path}' is not a file; expected a CSV of path,label rows")
    return _candidates_from_csv(path)


def _candidates_from_csv(csv_path: Path) -> tuple[list[Item], list[Problem]]:
    rows, sep, problems = _read_csv_rows(csv_path)
    name = csv_path.name
    if not rows:
        raise DatasetError(f"'{name}' is empty. Expected columns path,label[,group].")
    if max(len(r.cells) for r in rows) < 2:
        raise _one_column_error(name, rows[0].cells[0])
    header = [c.strip().lower() for c in rows[0].cells]
    columns = _csv_columns(header)
    has_header = columns is not None
    if columns is None:
        width = len(rows[0].cells)
        if width < 2:
            width = Counter(len(r.cells) for r in rows if len(r.cells) >= 2).most_common(1)[0][0]
        columns = (0, 1, 2 if width > 2 else None)
        names = ["path", "label", "group"][:width] + [f"column {i + 1}" for i in range(3, width)]
        if width > 3:
            problems.append(Problem(
                "notice", f"rows have {width} columns; only the first 3 (path,label,group) "
                "are used", csv_path, skipped=False))
    else:
        width, names = len(header), [c.strip() for c in rows[0].cells]
        if _swallowed_rows(rows[0], set(range(width)), sep):
            raise DatasetError(_unmatched_quote(name, rows[0].first, rows[0].last))
        rows = rows[1:]
    path_col, label_col, group_col = columns
    used = {c for c in columns if c is not None}
    needed = max(used) + 1
    expected = f"{', '.join(names[:width])} separated by {_SEPARATORS[sep]}"
    base = csv_path.parent
    items: list[Item] = []
    for row in rows:
        line_no = row.first
        if _swallowed_rows(row, used, sep):
            raise DatasetError(_unmatched_quote(name, row.first, row.last))
        cells = [c.strip() for c in row.cells]
        filled = len(cells)
        while filled and not cells[filled - 1]:
            filled -= 1
        if filled > width:
            problems.append(Problem(
                "bad-row", f"line {line_no}: {filled} columns, expected {width} ({expected}); "
                f"a {_SEPARATORS[sep]} inside a name needs quotes around the name; not used"))
            continue
        if len(cells) < needed:
            found = "1 column" if len(cells) == 1 else f"{len(cells)} columns"
            problems.append(Problem(
                "bad-row", f"line {line_no}: {found}, expected {width} ({expected}); not used"))
            continue
        raw_path, label = cells[path_col], cells[label_col]
        if not raw_path or not label:
            what = " and ".join(w for w, v in (("path", raw_path), ("label", label)) if not v)
            problems.append(Problem("bad-row", f"line {line_no}: empty {what}; not used"))
            continue
        group = cells[group_col] if group_col is not None else None
        file = Path(raw_path).expanduser()
        if not file.is_absolute():
            file = base / file
        trouble = _file_trouble(file)
        if trouble is not None:
            kind, reason = trouble
            if not has_header and row is rows[0]:
                reason += f" (if line {line_no} is a header, name its columns path,label[,group])"
            problems.append(Problem(kind, f"line {line_no}: {reason}", file))
            continue
        extra = tuple((names[c], cells[c]) for c in range(min(width, len(cells)))
                      if has_header and c not in used and cells[c]) if has_header else ()
        items.append(Item(file, label, group or None, attributes=extra))
    return items, problems


def _csv_columns(header: list[str]) -> tuple[int, int, int | None] | None:
    def find(names: Iterable[str]) -> int | None:
        return next((header.index(n) for n in names if n in header), None)

    path_col, label_col = find(_PATH_COLUMNS), find(_LABEL_COLUMNS)
    if path_col is None or label_col is None:
        return None
    return path_col, label_col, find(_GROUP_COLUMNS)


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
