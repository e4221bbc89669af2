"""Predictions as a table a user keeps: one CSV for `tlstudio predict --csv` and the studio's
"Save as CSV", and a summary per patient when the images carry one (DICOM).

Rows are the dictionaries `tlstudio predict --json` prints (from a run or an exported model).
The patient is never named: DICOM files give the same pseudonym of their PatientID (a hash
keyed by this installation's secret, ``core.pseudonyms``) that keeps a patient's images in
one part of a split.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ...errors import UserError
from ...pixels import dicom, parse_image_key
from ..pseudonyms import pseudonym_key
from .record import write_atomic


class TableError(UserError):
    """The CSV cannot be written where it was asked."""


def add_groups(rows: list[dict]) -> bool:
    """Give each row of a DICOM image its patient group (``row["group"]``); True when any
    row got one."""
    found = False
    cache: dict[str, str | None] = {}
    for row in rows:
        path, _ = parse_image_key(row["path"])
        if str(path) not in cache:
            cache[str(path)] = (dicom.patient_group(path, pseudonym_key())
                                if path.is_file() and dicom.is_dicom(path) else None)
        group = cache[str(path)]
        if group is not None:
            row["group"] = group
            found = True
    return found


def classes_of(rows: list[dict]) -> list[str]:
    """The classes in the order the model gave them (the first answered row's)."""
    for row in rows:
        if row.get("probabilities"):
            return list(row["probabilities"])
    return []


def to_csv(rows: list[dict]) -> str:
    """One line per image (or frame): path, frame, group, the call, one probability column per
    class, the unfamiliar-image warning and its score, and why a file was not read."""
    classes = classes_of(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "frame", "group", "called", *(f"p_{c}" for c in classes),
                     "unfamiliar", "unfamiliar_score", "error"])
    for row in rows:
        probs = row.get("probabilities") or {}
        ood = row.get("ood")
        score = row.get("ood_score")
        writer.writerow([
            row["path"], "" if row.get("frame") is None else row["frame"],
            row.get("group") or "", row.get("label") or "",
            *(f"{probs[c]:.6f}" if c in probs else "" for c in classes),
            "" if ood is None else ("yes" if ood else "no"),
            "" if score is None else f"{score:.4f}", row.get("error") or ""])
    return out.getvalue()


def check_target(path: str | Path) -> Path:
    """Where the table would go, refused (TableError) when it cannot be written there."""
    if not str(path).strip():
        raise TableError("--csv: name a file to write the predictions to")
    target = Path(path).expanduser()
    if target.is_dir():
        raise TableError(f"--csv: '{target}' is a folder; name a file")
    if not target.parent.is_dir():
        raise TableError(f"--csv: the folder '{target.parent}' does not exist")
    if not os.access(target.parent, os.W_OK):
        raise TableError(f"--csv: cannot write into '{target.parent}'")
    return target


def write_csv(rows: list[dict], path: str | Path) -> Path:
    """Write the table whole or not at all (a temporary file renamed into place)."""
    target = check_target(path)
    write_atomic(target, to_csv(rows))
    return target


def by_group(rows: list[dict]) -> list[dict]:
    """Per patient group: images, how many were called each class, unfamiliar and unreadable
    counts. Rows without a group are left out (empty list when none has one)."""
    groups: dict[str, dict] = {}
    classes = classes_of(rows)
    for row in rows:
        group = row.get("group")
        if not group:
            continue
        entry = groups.setdefault(group, {"group": group, "images": 0, "unreadable": 0,
                                          "unfamiliar": 0,
                                          "called": dict.fromkeys(classes, 0)})
        entry["images"] += 1
        if row.get("error"):
            entry["unreadable"] += 1
            continue
        entry["called"][row["label"]] = entry["called"].get(row["label"], 0) + 1
        entry["unfamiliar"] += bool(row.get("ood"))
    return sorted(groups.values(), key=lambda g: g["group"])


def group_line(entry: dict) -> str:
    """One group's summary in words."""
    called = ", ".join(f"{c} {n}" for c, n in entry["called"].items() if n)
    extra = "".join(f", {n} {word}" for n, word in ((entry["unfamiliar"], "unfamiliar (⚠)"),
                                                    (entry["unreadable"], "unreadable")) if n)
    images = f"{entry['images']} image{'s' if entry['images'] != 1 else ''}"
    return f"{entry['group']}: {images}: {called or 'none called'}{extra}"
