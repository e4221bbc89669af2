"""Strict dataset input: every CSV row and folder entry is used or named, never lost silently.

Each file here is one a user really gets from Excel, LibreOffice or a shell: semicolons where
the comma is the decimal mark, UTF-16 "Unicode text", Latin-1, a stray quote, links.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest
from PIL import Image

from tlstudio.core.data.dataset import DatasetError, DatasetIndex, scan

_COLOURS = itertools.count(1)


def _images(folder: Path, names: dict[str, list[str]]) -> dict[str, list[Path]]:
    """Tiny PNGs, each a different colour so none is a duplicate of another."""
    made: dict[str, list[Path]] = {}
    for label, files in names.items():
        for name in files:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            n = next(_COLOURS)
            Image.new("RGB", (8, 8), (n * 7 % 256, n * 13 % 256, 40)).save(path, format="PNG")
            made.setdefault(label, []).append(path)
    return made


def _two_classes(tmp_path: Path, per_class: int = 3) -> list[tuple[str, str]]:
    """(relative path, label) rows for two classes of images under tmp_path/img."""
    made = _images(tmp_path / "img", {
        label: [f"{label}/{label}_{i}.png" for i in range(per_class)] for label in ("disc", "sq")
    })
    return [(p.relative_to(tmp_path).as_posix(), label)
            for label, paths in made.items() for p in paths]


def _hashes(root: Path) -> dict[str, str]:
    """Every file and link under root by content, to prove a scan writes nothing."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.is_symlink():
                out[str(path)] = "link:" + os.readlink(path)
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _scan_unchanged(target: Path, root: Path) -> DatasetIndex:
    before = _hashes(root)
    index = scan(target)
    assert _hashes(root) == before
    return index


def _messages(index: DatasetIndex) -> list[str]:
    return [p.message for p in index.problems]


def test_semicolon_csv_works(tmp_path):
    """Excel where the comma is the decimal mark: ';', CRLF, names like 'disc 0,5 mm.png'.

    The old sniffer took the decimal comma for the separator and lost every row.
    """
    made = _images(tmp_path, {
        "disc": ["disc 0,5 mm.png", "disc 1,0 mm.png"], "sq": ["sq 0,5 mm.png", "sq 1,5 mm.png"],
    })
    pairs = [(label, p) for label, paths in made.items() for p in paths]
    lines = [f"{p.name};{label};P{i}" for i, (label, p) in enumerate(pairs)]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    index = _scan_unchanged(csv_path, tmp_path)
    assert index.counts() == {"disc": 2, "sq": 2}
    assert index.problems == []
    assert [item.group for item in index.items] == ["P0", "P1", "P2", "P3"]


@pytest.mark.parametrize("form", ["excel-unicode-text", "tab-with-commas"])
def test_tab_csv_works(tmp_path, form):
    """Excel's 'Unicode Text' (UTF-16, tab, CRLF), and a tab file whose names hold commas."""
    made = _images(tmp_path, {
        "disc": ["a, 1.png", "a, 2.png"], "sq": ["b, 1.png", "b, 2.png"],
    })
    rows = [f"{p.name}\t{label}" for label, paths in made.items() for p in paths]
    if form == "excel-unicode-text":
        csv_path = tmp_path / "labels.txt"
        csv_path.write_bytes(("\r\n".join(["path\tlabel", *rows]) + "\r\n").encode("utf-16"))
    else:
        csv_path = tmp_path / "labels.csv"
        csv_path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    index = _scan_unchanged(csv_path, tmp_path)
    assert index.counts() == {"disc": 2, "sq": 2}
    assert index.problems == []


@pytest.mark.parametrize("form", ["excel-german", "stray-latin1-byte"])
def test_utf8_bom_csv_works(tmp_path, form):
    """Excel 'CSV UTF-8' in German (BOM, ';', CRLF, umlauts, decimal commas in names); and a
    BOM file one later edit left with a Latin-1 byte: the BOM must not end up in the header.
    """
    made = _images(tmp_path, {
        "Kreis": ["Kreis 0,5.png", "Kreis 1,5.png"], "Größe": ["Größe 0,5.png", "Größe 2,5.png"],
    })
    csv_path = tmp_path / "labels.csv"
    if form == "excel-german":
        body = "".join(f"{p.name};{label}\r\n" for label, paths in made.items() for p in paths)
        csv_path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    else:
        body = "Path;Label\n" + "".join(
            f"{p.name};{label}\n" for label, paths in made.items() for p in paths)
        csv_path.write_bytes(b"\xef\xbb\xbf" + body.encode("cp1252"))
    index = _scan_unchanged(csv_path, tmp_path)
    assert index.counts() == {"Größe": 2, "Kreis": 2}
    notices = [p.message for p in index.problems if p.kind == "notice"]
    assert [p for p in index.problems if p.kind != "notice"] == []
    assert len(notices) == (form == "stray-latin1-byte")


def test_latin1_csv_is_read_with_a_notice(tmp_path):
    rows = _two_classes(tmp_path)
    text = "path,label\n" + "".join(
        f"{path},{'café' if label == 'disc' else 'thé'}\n" for path, label in rows)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_bytes(text.encode("latin-1"))
    index = _scan_unchanged(csv_path, tmp_path)
    assert index.classes == ["café", "thé"]
    notices = [p for p in index.problems if p.kind == "notice"]
    assert len(notices) == 1 and not notices[0].skipped
    assert "not UTF-8" in notices[0].message and "Latin-1" in notices[0].message
    assert "line 2" in notices[0].message
    assert notices[0].path == csv_path


@pytest.mark.parametrize("closing", ["none", "later-quote"])
def test_stray_quote_is_an_error_naming_the_line(tmp_path, closing):
    """'"img.png,cat' made Python's csv swallow the following rows into one field: the old
    scan kept the rows before it and lost the next five (or all the rest) without a word."""
    rows = _two_classes(tmp_path, per_class=6)
    pairs = zip(rows[:6], rows[6:], strict=True)
    rows = [row for pair in pairs for row in pair]  # disc, sq, disc, sq, ...
    lines = ["path,label", *(f"{p},{label}" for p, label in rows)]  # lines 1..13
    lines[6] = '"' + lines[6]  # line 7 opens a quote...
    if closing == "later-quote":  # ...that a quote opening the label of line 11 closes
        path, label = rows[9]
        lines[10] = f'{path},"{label}'
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    last = 11 if closing == "later-quote" else 13
    with pytest.raises(DatasetError, match="line 7: unmatched quote") as err:
        scan(csv_path)
    assert f"rows from line 7 to {last} would be read as one" in str(err.value)
    assert "'labels.csv'" in str(err.value)


def test_quoted_newline_in_a_path_is_an_error(tmp_path):
    """A quote that closes cleanly rows later raises no csv error, but still ate those rows."""
    rows = _two_classes(tmp_path, per_class=4)
    lines = ["path,label", *(f"{p},{label}" for p, label in rows)]
    lines[2] = '"' + lines[2]
    lines[5] = lines[5].replace(",", '",', 1)  # closes the quote at line 6, before the label
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 3: unmatched quote .* rows from line 3 to 6"):
        scan(csv_path)


def test_bad_rows_are_listed_with_their_line_numbers(tmp_path):
    rows = _two_classes(tmp_path)
    (tmp_path / "img" / "a folder.png").mkdir()
    lines = ["path,label", *(f"{p},{label}" for p, label in rows)]
    lines += [
        "img/disc/disc_0.png,disc,extra",  # 8: too many
        "img/disc/disc_1.png",  # 9: too few
        ",disc",  # 10: empty path
        "img/sq/sq_0.png,  ",  # 11: empty label
        "img/a folder.png,disc",  # 12: a folder
        "img/nowhere.png,sq",  # 13: missing
        "img/disc/disc_2.png,disc,,",  # 14: trailing empty cells carry nothing: fine
    ]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = _scan_unchanged(csv_path, tmp_path)
    by_line = {m.split(":")[0]: m for m in _messages(index) if m.startswith("line ")}
    assert "3 columns, expected 2" in by_line["line 8"]
    assert "1 column, expected 2" in by_line["line 9"]
    assert "empty path" in by_line["line 10"]
    assert "empty label" in by_line["line 11"]
    assert "is a folder" in by_line["line 12"]
    assert "file not found" in by_line["line 13"]
    assert "line 14" not in by_line
    assert index.counts() == {"disc": 3, "sq": 3}  # line 14 lists line 4's file again
    assert sorted(by_line, key=lambda k: int(k.split()[1])) == [f"line {n}" for n in range(8, 14)]


def test_headerless_rows_wider_than_the_first_are_listed(tmp_path):
    rows = _two_classes(tmp_path, per_class=4)
    lines = [f"{p},{label},g{i}" for i, (p, label) in enumerate(rows)]
    lines[4] += ",oops"  # line 5
    lines[5] = lines[5].rsplit(",", 1)[0]  # line 6: no group
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = _scan_unchanged(csv_path, tmp_path)
    messages = _messages(index)
    assert any(m.startswith("line 5: 4 columns, expected 3") for m in messages)
    assert any(m.startswith("line 6: 2 columns, expected 3") for m in messages)
    assert {p.kind for p in index.problems if p.message.startswith("line ")} == {"bad-row"}


@pytest.mark.parametrize("sep,hint", [("|", "'|'"), (" ", "no comma, semicolon or tab")])
def test_one_column_file_names_the_separator(tmp_path, sep, hint):
    rows = _two_classes(tmp_path)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("".join(f"{p}{sep}{label}\n" for p, label in rows), encoding="utf-8")
    with pytest.raises(DatasetError, match="every line has one column") as err:
        scan(csv_path)
    message = str(err.value)
    assert hint in message and "path,label[,group]" in message and "'labels.csv'" in message


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_folder_lists_broken_links_and_loops_and_follows_good_links(tmp_path):
    root = tmp_path / "data"
    _images(root, {"disc": [f"disc/d{i}.png" for i in range(3)]})
    elsewhere = _images(tmp_path / "outside", {"sq": [f"sq{i}.png" for i in range(3)]})
    (root / "sq").symlink_to(tmp_path / "outside")  # a linked class folder
    extra = _images(tmp_path / "more", {"disc": ["m0.png"]})["disc"][0]
    (root / "disc" / "linked.png").symlink_to(extra)  # a linked file
    (root / "disc" / "gone.png").symlink_to(root / "disc" / "deleted.png")
    (root / "disc" / "self.png").symlink_to(root / "disc" / "self.png")
    (root / "disc" / "sub").mkdir()
    (root / "disc" / "sub" / "up").symlink_to(root / "disc")  # a folder loop
    (root / "disc" / "top").symlink_to(root)  # back to the dataset root
    (root / "ghost").symlink_to(tmp_path / "no-such-class")  # dangling class folder

    index = _scan_unchanged(root, tmp_path)

    assert index.counts() == {"disc": 4, "sq": 3}
    assert {item.path for item in index.items if item.label == "sq"} == {
        root / "sq" / p.name for p in elsewhere["sq"]}
    by_name = {p.path.name: p for p in index.problems if p.path is not None}
    assert by_name["gone.png"].message == "broken link, not used"
    assert by_name["self.png"].message == "link loop, not used"
    assert by_name["up"].message == "link loop, not used"
    assert by_name["top"].message == "link loop, not used"
    assert by_name["ghost"].message == "broken link, not used"
    assert all(p.skipped for p in by_name.values())
