"""Simulated domain changes (another scanner's contrast, noise, blur or resolution) applied
to a run's held-out images: the domain adaptation benchmark and its tests measure on them.

Each change maps a PIL image to an RGB PIL image; :func:`write_domain` writes the changed
copies under ``folder/images/<class>/`` with a ``labels.csv`` beside them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

Change = Callable[[Image.Image], Image.Image]


def tone(gamma: float, contrast: float) -> Change:
    """Gamma, then contrast around mid-grey: another scanner's or monitor's tone curve."""
    def change(img: Image.Image) -> Image.Image:
        f = (np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0) ** gamma
        return Image.fromarray((np.clip(0.5 + (f - 0.5) * contrast, 0, 1) * 255)
                               .astype(np.uint8))
    return change


def noise(sigma: float, seed: int = 0) -> Change:
    """Gaussian noise of ``sigma`` grey levels: a noisier detector or a lower dose."""
    rng = np.random.default_rng(seed)

    def change(img: Image.Image) -> Image.Image:
        a = np.asarray(img.convert("RGB"), dtype=np.float32)
        return Image.fromarray(np.clip(a + rng.normal(0, sigma, a.shape), 0, 255)
                               .astype(np.uint8))
    return change


def blur(radius: float) -> Change:
    def change(img: Image.Image) -> Image.Image:
        return img.convert("RGB").filter(ImageFilter.GaussianBlur(radius))
    return change


def low_resolution(factor: int) -> Change:
    """Down by ``factor`` and back up: a coarser acquisition matrix."""
    def change(img: Image.Image) -> Image.Image:
        img = img.convert("RGB")
        small = img.resize((max(1, img.width // factor), max(1, img.height // factor)),
                           Image.BILINEAR)
        return small.resize(img.size, Image.BILINEAR)
    return change


def chain(*changes: Change) -> Change:
    def change(img: Image.Image) -> Image.Image:
        for c in changes:
            img = c(img)
        return img
    return change


def unchanged(img: Image.Image) -> Image.Image:
    return img.convert("RGB")


def benchmark_changes() -> dict[str, Change]:
    """The changes BENCHMARKS.md reports, the source domain itself first."""
    return {
        "none (the source domain)": unchanged,
        "gamma 2.2, contrast 0.5": tone(2.2, 0.5),
        "gamma 3, contrast 0.35": tone(3.0, 0.35),
        "noise sigma 25": noise(25),
        "blur radius 3": blur(3),
        "resolution / 4": low_resolution(4),
        "all four, milder": chain(blur(1.5), noise(12, seed=1), tone(1.8, 0.6)),
    }


def write_domain(folder: Path, rows: list[tuple[str, str]], change: Change) -> Path:
    """Changed copies of ``rows`` (path, label) as PNGs, and their labels.csv (returned)."""
    labels = folder / "labels.csv"
    if labels.is_file():
        return labels
    out = []
    for k, (path, label) in enumerate(rows):
        target = folder / "images" / label / f"{k:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(path) as img:
            change(img).save(target)
        out.append((str(target), label))
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("path", "label"), *out])
    return labels
