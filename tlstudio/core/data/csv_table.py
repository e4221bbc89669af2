"""A ``path,label[,group]`` CSV read the way spreadsheets write them: comma, semicolon or tab
(a header decides, else the data), UTF-8 or Latin-1 (said so), strict quoting with line
numbers, relative paths from the CSV's folder, further columns kept as subgroups, and every
row that is not used listed with its reason."""

from __future__ import annotations

import codecs
import csv
import errno
import io
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .images import looks_like_image
from .items import DatasetError, Item, Problem

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
    return candidates_from_csv(path)


def candidates_from_csv(csv_path: Path) -> tuple[list[Item], list[Problem]]:
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
