"""Labels made in tlstudio: a project per image folder, kept in tlstudio's own folder.

A project holds the classes, the labels given so far and the review decisions. Its labels are
``labels.csv`` (``path,label[,group]``, absolute paths): a dataset every other step reads like
any CSV. Each change rewrites the file whole (a temporary file, flushed to disk, then renamed
over the old one), so a crash or ``kill -9`` at any moment leaves either the old labels or the
new ones, never half a file. Nothing is ever written into the user's image folder.

Review decisions on a labeled dataset (``keep``, ``exclude``, ``relabel``) live in the same
kind of project: reviewing a folder or CSV imports its labels into a project, and the
corrected labels are the project's CSV; the user's folder or CSV is never changed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UserError
from ..paths import app_data_dir, process_alive
from .dataset import DatasetIndex
from .folders import list_images

LABELS = "labels.csv"
PROJECT = "project.json"
KEYS = "123456789"  # one key per class, in class order (the studio's labeling keys)


class LabelError(UserError):
    """A label project cannot be opened or changed; the message is for the user."""


def image_id(path: str | Path) -> str:
    """How a labeled image is named: its absolute path, links not followed (the name the
    user sees in the folder)."""
    return os.path.abspath(os.path.expanduser(str(path)))


def projects_dir() -> Path:
    return app_data_dir() / "labels"


def _slug(folder: Path) -> str:
    digest = hashlib.blake2b(str(folder).encode(), digest_size=5).hexdigest()
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", folder.name).strip("-")[:40] or "images"
    return f"{name}-{digest}"


def _own_project(root: str | Path) -> Path | None:
    """The project whose labels.csv ``root`` is, if it is one."""
    root = Path(image_id(root))
    if root.name == LABELS and root.parent.parent == Path(image_id(projects_dir())) \
            and (root.parent / PROJECT).is_file():
        return root.parent
    return None


def _remove_stale_copies(home: Path) -> None:
    """A process killed between writing a file aside and renaming it leaves the copy: the
    old file is whole, so the copy goes (unless its process is still running)."""
    for tmp in home.glob(".*.tmp"):
        try:
            pid = int(tmp.name.rsplit(".", 2)[-2])
        except (ValueError, IndexError):
            pid = None
        if pid is None or pid == os.getpid() or not process_alive(pid):
            tmp.unlink(missing_ok=True)


def _write_durably(path: Path, text: str) -> None:
    """The whole file or the old one: write aside, flush to disk, rename over."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class LabelProject:
    """One folder's labels. ``labels`` maps an image (absolute path) to its class."""

    dir: Path
    images_dir: Path
    classes: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    groups: dict[str, str] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)  # path -> why
    kept: set[str] = field(default_factory=set)  # reviewed and kept as labeled
    source: str | None = None  # the labeled dataset this project reviews, if any
    _undo: list[tuple[str, str | None]] = field(default_factory=list, repr=False)

    # --- opening ------------------------------------------------------------------------
    @classmethod
    def for_folder(cls, images_dir: str | Path, classes: list[str] | None = None
                   ) -> LabelProject:
        """The project of ``images_dir`` (created on first use): labeling the same folder
        again goes on where it stopped."""
        folder = Path(image_id(images_dir))
        if not folder.is_dir():
            raise LabelError(f"'{images_dir}' is not a folder of images")
        home = projects_dir() / _slug(folder)
        if (home / PROJECT).is_file():
            project = cls.open(home)
            for name in classes or []:
                project.add_class(name)
            return project
        project = cls(home, folder, [])
        for name in classes or []:
            project.add_class(name)
        home.mkdir(parents=True, exist_ok=True)
        project.save()
        return project

    @classmethod
    def find_for_dataset(cls, root: str | Path) -> LabelProject | None:
        """The review project of a labeled dataset, if one was started (a project's own
        labels.csv is reviewed in that project)."""
        home = _own_project(root) or projects_dir() / ("review-" + _slug(Path(image_id(root))))
        return cls.open(home) if (home / PROJECT).is_file() else None

    def decided(self) -> set[str]:
        """Images already kept or excluded in a review (absolute paths)."""
        return set(self.kept) | set(self.excluded)

    @classmethod
    def for_dataset(cls, index: DatasetIndex) -> LabelProject:
        """A project holding a labeled dataset's labels, to review them without touching
        the dataset; opened again, it keeps the decisions already made."""
        root = Path(image_id(index.root))
        home = _own_project(root) or projects_dir() / ("review-" + _slug(root))
        if (home / PROJECT).is_file():
            project = cls.open(home)
        else:
            folder = root if root.is_dir() else root.parent
            project = cls(home, folder, list(index.classes), source=str(root))
            for item in index.items:
                if item.frame is None:
                    project.labels[image_id(item.path)] = item.label
                    if item.group is not None:
                        project.groups[image_id(item.path)] = item.group
            home.mkdir(parents=True, exist_ok=True)
            project.save()
        return project

    @classmethod
    def open(cls, home: str | Path) -> LabelProject:
        home = Path(home)
        try:
            meta = json.loads((home / PROJECT).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise LabelError(f"'{home}' is not a tlstudio label project ({exc})") from None
        project = cls(home, Path(meta["images"]), list(meta["classes"]),
                      excluded=dict(meta.get("excluded", {})), kept=set(meta.get("kept", [])),
                      source=meta.get("source"))
        project.labels, project.groups = read_labels(home / LABELS)
        _remove_stale_copies(home)
        return project

    # --- labeling -----------------------------------------------------------------------
    def add_class(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise LabelError("a class needs a name")
        if "," in name or "\n" in name or name.startswith("."):
            raise LabelError(f"'{name}': class names cannot hold commas or line breaks, or "
                             "start with a dot")
        if name not in self.classes:
            self.classes.append(name)
            self.save()

    def set_label(self, path: str | Path, label: str) -> None:
        """Label one image (saved at once); undo takes it back."""
        if label not in self.classes:
            raise LabelError(f"'{label}' is not one of the classes {self.classes}")
        key = image_id(path)
        self._undo.append((key, self.labels.get(key)))
        self.labels[key] = label
        self.excluded.pop(key, None)
        self.save()

    def undo(self) -> str | None:
        """Take back the last label; returns the image it concerned."""
        if not self._undo:
            return None
        key, before = self._undo.pop()
        if before is None:
            self.labels.pop(key, None)
        else:
            self.labels[key] = before
        self.save()
        return key

    def import_csv(self, csv_file: str | Path) -> tuple[int, int]:
        """Take the labels of a ``path,label[,group]`` CSV for this folder's images (a
        partly labeled folder); new class names become classes. Returns (taken, not in this
        folder)."""
        labels, groups = read_labels(csv_file)
        files, _ = list_images(self.images_dir)
        inside = {image_id(f) for f in files}
        taken = {k: v for k, v in labels.items() if k in inside}
        for name in sorted(set(taken.values()) - set(self.classes)):
            self.add_class(name)
        self.labels.update(taken)
        self.groups.update({k: g for k, g in groups.items() if k in taken})
        self.save()
        return len(taken), len(labels) - len(taken)

    def exclude(self, path: str | Path, why: str = "excluded in review") -> None:
        key = image_id(path)
        self.excluded[key] = why
        self.kept.discard(key)
        self.save()

    def keep(self, path: str | Path) -> None:
        key = image_id(path)
        self.kept.add(key)
        self.excluded.pop(key, None)
        self.save()

    def counts(self) -> dict[str, int]:
        used = [label for key, label in self.labels.items() if key not in self.excluded]
        return {name: used.count(name) for name in self.classes}

    def unlabeled(self) -> list[Path]:
        """The folder's images with no label yet (excluded ones left out), in file order."""
        files, _ = list_images(self.images_dir)
        done = set(self.labels) | set(self.excluded)
        return [f for f in files if image_id(f) not in done]

    # --- files --------------------------------------------------------------------------
    @property
    def csv_path(self) -> Path:
        return self.dir / LABELS

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_durably(self.csv_path, labels_csv(
            {k: v for k, v in self.labels.items() if k not in self.excluded}, self.groups))
        _write_durably(self.dir / PROJECT, json.dumps({
            "images": str(self.images_dir), "classes": self.classes, "source": self.source,
            "excluded": self.excluded, "kept": sorted(self.kept)}, indent=2))

    def export(self, target: str | Path) -> Path:
        """A copy of the labels CSV where the user wants it."""
        target = Path(target).expanduser()
        if target.is_dir():
            target = target / LABELS
        _write_durably(target, self.csv_path.read_text(encoding="utf-8"))
        return target

    def ready(self, per_class: int = 2) -> str | None:
        """Why these labels cannot be trained on yet, or None."""
        counts = self.counts()
        enough = [name for name, n in counts.items() if n >= per_class]
        if len(enough) < 2:
            return (f"label at least {per_class} images in each of two classes "
                    f"(so far: {', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'})")
        return None


def labels_csv(labels: dict[str, str], groups: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    with_groups = any(k in groups for k in labels)
    writer.writerow(["path", "label", "group"] if with_groups else ["path", "label"])
    for key in sorted(labels):
        row = [key, labels[key]]
        if with_groups:
            row.append(groups.get(key, ""))
        writer.writerow(row)
    return out.getvalue()


def read_labels(csv_file: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(labels, groups) of a ``path,label[,group]`` CSV; relative paths are relative to the
    CSV's folder. A missing file is no labels yet."""
    csv_file = Path(csv_file)
    if not csv_file.is_file():
        return {}, {}
    labels: dict[str, str] = {}
    groups: dict[str, str] = {}
    with open(csv_file, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}, {}
    header = [h.strip().lower() for h in rows[0]]
    if "path" not in header or "label" not in header:
        raise LabelError(f"'{csv_file}' needs the columns path,label[,group] "
                         f"(its first line is {','.join(rows[0])})")
    p, lab = header.index("path"), header.index("label")
    g = header.index("group") if "group" in header else None
    for row in rows[1:]:
        if len(row) <= max(p, lab) or not row[p].strip() or not row[lab].strip():
            continue
        path = Path(row[p].strip())
        key = image_id(path if path.is_absolute() else csv_file.parent / path)
        labels[key] = row[lab].strip()
        if g is not None and len(row) > g and row[g].strip():
            groups[key] = row[g].strip()
    return labels, groups
