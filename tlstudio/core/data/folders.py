"""A folder of images, walked by hand: one sub-folder per class (or an unlabeled folder),
links followed once, and every entry that is not used listed with its reason."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .images import looks_like_image
from .items import DatasetError, Item, Problem, first_problems_hint


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


def candidates_from_folder(root: Path) -> tuple[list[Item], list[Problem]]:
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
            "sub-folder per class." + first_problems_hint(problems)
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
