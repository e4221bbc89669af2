"""What an adaptation request names, checked and read before any model adapts: the run,
the new domain's images (a random sample of at most ``TARGET_IMAGES``, the labeled ones
always among them) and the labels of a few of them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...pixels import image_key, parse_image_key
from ..data.preprocess import Preprocessing
from ..engine.events import StageProgress
from .history import read_config, require_finished
from .predict import entries_under, expand_paths, read_squares

METHODS = {
    "statistics": "normalisation statistics aligned to the source (domain-specific "
                  "BatchNorm)",
    "entropy": "normalisation statistics aligned, then entropy minimisation on the "
               "BatchNorm scales and shifts (TENT)",
}
DEFAULT_METHOD = "statistics"
MIN_IMAGES = 16  # fewer give statistics too noisy to normalise with
TARGET_IMAGES = 2000  # new images read at most: enough for statistics
LABELED_IMAGES = 2000  # labeled ones scored at most: an interval of about +-2 points

Emit = Callable[[object], None]


class AdaptError(UserError):
    """A request adapt cannot carry out; the message says why and what to do."""


@dataclass
class Images:
    """The readable images of a request (prepared squares), with what was left out and why."""

    squares: np.ndarray
    keys: list[str]
    left_out: list[tuple[str, str]] = field(default_factory=list)
    found: int = 0  # images found, before a random sample of at most TARGET_IMAGES


# --- checks that come before any slow work--------------------------------------------

def check_request(run_dir: str | Path, images: str | Path, out_dir: str | Path,
                  labels: str | Path | None = None, method: str = DEFAULT_METHOD,
                  ) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Refuse a request that cannot work, in milliseconds, before a model is built; returns
    the labels (:func:`read_labels`), read once."""
    run_dir, images, out_dir = Path(run_dir), Path(images).expanduser(), Path(out_dir)
    require_finished(run_dir)
    config = read_config(run_dir)
    adapted = config.get("adapted")
    if adapted:
        raise AdaptError(f"'{run_dir}' is itself adapted (to '{adapted.get('domain')}'): "
                         f"adapt its source run instead, {adapted.get('source_run')}, so that "
                         "every domain is aligned to the images the model was trained on")
    if method not in METHODS:
        raise AdaptError(f"--method: '{method}' is not one of {', '.join(METHODS)}")
    if not images.is_dir():
        raise AdaptError(f"--images: '{images}' is not a folder of images of the new domain")
    if labels is not None and not Path(labels).expanduser().is_file():
        raise AdaptError(f"--labels: '{labels}' is not a file (a CSV of path,label rows)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise AdaptError(f"--out: '{out_dir}' already exists and is not empty; name a new "
                         "folder (the source run is never overwritten)")
    if out_dir.resolve() == run_dir.resolve():
        raise AdaptError("--out must be a new folder, not the source run")
    for inside in (images, run_dir):
        if out_dir.resolve().is_relative_to(inside.resolve()):
            raise AdaptError(f"--out: '{out_dir}' lies inside '{inside}'; tlstudio writes "
                             "nothing into your image folders or into a run: name a folder "
                             "elsewhere")
    # the rows and the files are counted now (no image is decoded): seconds, not minutes
    known, left_out = (read_labels(labels, [str(c) for c in config.get("classes", [])])
                       if labels else ({}, []))
    found = len(expand_paths([images]))
    if found + len(set(known) - keys_under(images, known)) < MIN_IMAGES:
        raise AdaptError(f"--images: '{images}' holds {found} image file(s); adapting needs "
                         f"at least {MIN_IMAGES} images of the new domain")
    return known, left_out


def read_labels(csv_file: str | Path, classes: list[str]) -> tuple[dict[str, int],
                                                                      list[tuple[str, str]]]:
    """``{image key: class index}`` from a CSV read like any CSV dataset, and the rows left
    out with their reasons (unreadable, or a class the run does not know)."""
    from ..data.csv_table import read_label_rows

    items, problems = read_label_rows(Path(csv_file).expanduser())
    left_out = [(str(p.path or csv_file), p.message) for p in problems if p.skipped]
    known = {}
    for item in items:
        if item.label in classes:
            known[same_image(item.key)] = classes.index(item.label)
        else:
            left_out.append((item.key, f"class '{item.label}' is not one the run knows "
                                       f"({', '.join(classes)})"))
    if not known:
        raise AdaptError(f"--labels: no row of '{csv_file}' names an image of one of the "
                         f"run's classes ({', '.join(classes)})")
    return known, left_out


def same_image(key: str) -> str:
    """One name per image however it was reached (a link, ``..``, a relative path): the
    resolved file, and its frame."""
    file, frame = parse_image_key(key)
    return image_key(Path(file).expanduser().resolve(), frame)


def read_images(paths: list[str | Path], prep: Preprocessing,
                emit: Emit | None = None, stage: str = "reading the new images",
                limit: int | None = None, keep: set[str] | frozenset = frozenset(),
                seed: int = 0) -> Images:
    """Every image under ``paths`` (files, folders, frame keys) turned into the model's
    squares by the one pixel rule; unreadable ones listed with their reason. ``limit``: at
    most this many, drawn at random, the ``keep`` keys always among them."""
    entries = entries_under(paths, prep.frames)
    names = [same_image(image_key(*e)) for e in entries]  # each path resolved once
    found = len(entries)
    if limit is not None and len(entries) > limit:
        kept = [k for k, name in enumerate(names) if name in keep]
        others = [k for k, name in enumerate(names) if name not in keep]
        drawn = np.random.default_rng(seed).permutation(len(others))[
            : max(0, limit - len(kept))]
        chosen = kept + [others[k] for k in sorted(drawn)]
        entries, names = [entries[k] for k in chosen], [names[k] for k in chosen]
    squares, keys, left_out = [], [], []
    for k, ((_, _, square, error), key) in enumerate(zip(read_squares(entries, prep), names,
                                                         strict=True)):
        if error is None:
            squares.append(square)
            keys.append(key)
        else:
            left_out.append((key, error))
        if emit is not None and (k % 32 == 31 or k == len(entries) - 1):
            emit(StageProgress(stage, k + 1, len(entries)))
    side = prep.input_size
    array = np.stack(squares) if squares else np.zeros((0, side[0], side[1], 3), np.uint8)
    return Images(array, keys, left_out, found)


def labeled_sample(known: dict[str, int], seed: int = 0) -> dict[str, int]:
    """At most ``LABELED_IMAGES`` of the labeled images, drawn at random: a labels file of a
    whole archive is scored on a sample that measures accuracy as well, in minutes."""
    if len(known) <= LABELED_IMAGES:
        return known
    keys = sorted(known)
    drawn = np.random.default_rng(seed).permutation(len(keys))[:LABELED_IMAGES]
    return {keys[k]: known[keys[k]] for k in sorted(drawn)}


def per_frame(known: dict[str, int], keys: list[str]) -> dict[str, int]:
    """Labels given per file apply to each of its frames read on their own (runs trained
    on every frame of multi-frame DICOMs)."""
    out = dict(known)
    for key in keys:
        if key not in out:
            file, frame = parse_image_key(key)
            if frame is not None and str(file) in known:
                out[key] = known[str(file)]
    return out


def keys_under(images: str | Path, known: dict[str, int]) -> set[str]:
    """The labeled keys the images folder already holds (read once, not twice)."""
    root = Path(images).expanduser().resolve()
    return {k for k in known if parse_image_key(k)[0].is_relative_to(root)}
