"""Scanning folders and CSVs: classes, problems with reasons, never writing to the data."""

from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tlstudio.core.data.dataset import DatasetError, scan


def _snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def _seed_broken_files(folder):
    """The four classic broken files, in class 'disc'."""
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("not an image at all")
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, "JPEG")
    (folder / "cut.jpg").write_bytes(buf.getvalue()[:700])
    Image.new("RGB", (32, 32), (5, 6, 7)).save(folder / "really_png.jpg", format="PNG")


def test_folder_scan_counts_and_reports(shapes_folder):
    disc = shapes_folder / "disc"
    _seed_broken_files(disc)
    (disc / ".hidden.png").write_bytes((disc / "disc_000.png").read_bytes())
    (disc / "readme.txt").write_text("hello")
    sub = disc / "more"
    sub.mkdir()
    shutil.copy(disc / "disc_001.png", sub / "copy_of_1.png")  # duplicate inside a class
    before = _snapshot(shapes_folder)

    index = scan(shapes_folder)

    assert index.classes == ["disc", "square"]
    # 24 generated + really_png.jpg; the copy is dropped as duplicate
    assert index.counts() == {"disc": 25, "square": 24}
    by_name = {p.path.name: p for p in index.problems if p.path is not None}
    assert "empty" in by_name["empty.jpg"].message
    assert "not an image" in by_name["notes.png"].message
    assert "truncated" in by_name["cut.jpg"].message
    assert "hidden" in by_name[".hidden.png"].message
    assert "not an image file" in by_name["readme.txt"].message
    assert by_name["copy_of_1.png"].kind == "duplicate"
    assert "really_png.jpg" not in by_name
    assert _snapshot(shapes_folder) == before  # nothing written into the user's folder


def test_conflicting_duplicate_is_left_out(shapes_folder):
    shutil.copy(shapes_folder / "disc" / "disc_000.png", shapes_folder / "square" / "odd.png")
    index = scan(shapes_folder)
    conflicts = [p for p in index.problems if p.kind == "conflict"]
    assert {p.path.name for p in conflicts} == {"disc_000.png", "odd.png"}
    assert index.counts() == {"disc": 23, "square": 24}


def test_small_class_and_imbalance(shapes_folder):
    (shapes_folder / "lonely").mkdir()
    shutil.copy(shapes_folder / "disc" / "disc_000.png", shapes_folder / "lonely" / "one.png")
    (shapes_folder / "disc" / "disc_000.png").unlink()
    for f in sorted((shapes_folder / "square").iterdir())[4:]:
        f.unlink()
    index = scan(shapes_folder)
    assert "lonely" not in index.classes
    kinds = {p.kind for p in index.problems}
    assert {"small-class", "imbalance"} <= kinds


@pytest.mark.parametrize("setup,expected", [
    ("missing", "does not exist"),
    ("flat", "no class sub-folders"),
    ("empty", "no class sub-folders"),
    ("one-class", "at least 2 classes"),
    ("not-csv", "not a CSV"),
])
def test_wrong_input_gets_clear_message(tmp_path, setup, expected):
    target = tmp_path / "data"
    if setup == "flat":
        target.mkdir()
        Image.new("RGB", (8, 8)).save(target / "a.png")
    elif setup == "empty":
        target.mkdir()
    elif setup == "one-class":
        (target / "only").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (8, 8), (i, 0, 0)).save(target / "only" / f"{i}.png")
    elif setup == "not-csv":
        target = tmp_path / "model.bin"
        target.write_bytes(b"x")
    with pytest.raises(DatasetError, match=expected):
        scan(target)


def test_csv_with_groups_relative_paths_and_missing_files(shapes_folder, tmp_path):
    rows = ["path,label,patient"]
    for i, f in enumerate(sorted((shapes_folder / "disc").iterdir())):
        rows.append(f"{os.path.relpath(f, tmp_path)},disc,p{i // 3}")
    for i, f in enumerate(sorted((shapes_folder / "square").iterdir())):
        rows.append(f"{f},square,q{i // 3}")
    rows.append("gone.png,disc,p99")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("\n".join(rows))
    index = scan(csv_path)
    assert index.source == "csv" and index.has_groups
    assert index.counts() == {"disc": 24, "square": 24}
    assert [p.kind for p in index.problems] == ["missing"]
    assert "line 50" in index.problems[0].message
