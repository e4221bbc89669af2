"""Generated images for checks that must not depend on any dataset being installed:
noisy pictures of red discs and blue squares, two classes a pretrained network tells apart
after a few steps. Used by ``tlstudio --smoke-test`` and by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES = ("disc", "square")


def shape_image(kind: str, rng: np.random.Generator, size: int = 96) -> Image.Image:
    """A red disc or a blue square of random size and place on a noisy grey background."""
    return shape_with_mask(kind, rng, size)[0]


def shape_with_mask(kind: str, rng: np.random.Generator, size: int = 96
                    ) -> tuple[Image.Image, np.ndarray]:
    """:func:`shape_image` and where the shape is (bool H x W): a known answer for
    heatmaps."""
    if kind not in SHAPE_CLASSES:
        raise ValueError(f"kind must be one of {SHAPE_CLASSES}, not {kind!r}")
    background = rng.integers(90, 160, size=(size, size, 3), dtype=np.uint8)
    img = Image.fromarray(background)
    draw = ImageDraw.Draw(img)
    r = int(rng.integers(size // 5, size // 3))
    cx, cy = (int(v) for v in rng.integers(r, size - r, size=2))
    if kind == "disc":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(220, 30, 30))
    else:
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=(30, 40, 220))
    mask = Image.new("L", img.size, 0)
    shape = ImageDraw.Draw(mask).ellipse if kind == "disc" else ImageDraw.Draw(mask).rectangle
    shape((cx - r, cy - r, cx + r, cy + r), fill=255)
    return img, np.asarray(mask) > 0


def make_shapes_folder(root: str | Path, per_class: int = 24, seed: int = 0) -> Path:
    """A folder-per-class dataset (``disc/``, ``square/``) of PNGs under ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in SHAPE_CLASSES:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape_image(kind, rng).save(root / kind / f"{kind}_{i:03d}.png")
    return root
