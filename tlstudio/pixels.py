"""The pixel rule: how one image file becomes the picture a model sees.

Defined once, here, and used by training, ``predict --run``, the studio and the exported
model's runtime (:mod:`tlstudio.export_runtime`), so the app and an exported model can never
see different pixels. It imports nothing else from tlstudio (an import-linter contract), and
:data:`RULE_STEPS` describes it in words inside every ``preprocessing.json`` so someone
outside can reimplement it.

Formats are recognised by content (Pillow sniffs the header), never by extension, so a
``.jpg`` that is really a PNG reads fine and a text file named ``.png`` is refused with a
reason. A change to what this module does to pixels must change :data:`RULE`: runs and
exports record it, the image cache keys on it, and a run made under another rule is refused
rather than fed different pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

RULE = "tlstudio-pixels/1"

RULE_STEPS = (
    "Decode by content (PNG, JPEG, BMP, TIFF, WebP, GIF); a multi-frame file gives its "
    "first frame. Images above 180 million pixels are refused.",
    "Apply the EXIF orientation tag.",
    "Palette images: expand the palette, including its transparency.",
    "16-bit, 32-bit integer and float grayscale: map the image's own smallest finite value "
    "to 0 and its largest to 255 linearly, then floor(v + 0.5); non-finite values become 0; "
    "a constant image becomes 0.",
    "Images with alpha (RGBA, LA, palette transparency): composite over opaque black "
    "(Pillow alpha_composite), then drop alpha.",
    "8-bit grayscale and 1-bit: the gray value in R, G and B.",
    "Other modes (CMYK, YCbCr, LAB, HSV): Pillow convert('RGB').",
    "Geometry: resize so the shorter side is S = floor(max(input_size) / crop_pct) with the "
    "named filter (Pillow resize, reducing_gap=None; the longer side round(side * scale), at "
    "least S), keep the centre S x S square (left = (width - S) // 2, top = (height - S) "
    "// 2), then the centre input_size crop of that square the same way.",
)

# Extensions looked at when scanning a folder. Content decides the format; this list only
# keeps us from opening every file of a folder (notes, spreadsheets, ...).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dib"}
)
# What Pillow may report for a file we accept.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "MPO", "DIB"})
MAX_PIXELS = 180_000_000
# Pillow's own guard (a warning above the limit, an error above twice it) stays on as well.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
}

_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I", "F", "I;32", "F;32")
_WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageReadError(Exception):
    """An image could not be read; ``str(err)`` is a reason fit to show a user."""


def looks_like_image(path: Path) -> bool:
    """True when the file name suggests an image worth opening while scanning."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _full_range(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    finite = np.isfinite(arr)
    out = np.zeros(arr.shape, dtype=np.float64)
    if finite.any():
        lo, hi = float(arr[finite].min()), float(arr[finite].max())
        if hi > lo:
            out[finite] = (arr[finite] - lo) * (255.0 / (hi - lo))
    gray = np.floor(np.clip(out + 0.5, 0, 255)).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB by the rule (see :data:`RULE_STEPS`)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH:
        return _full_range(img)
    if mode == "P":
        img = img.convert("RGBA")  # keeps the palette's transparency (tRNS / GIF index)
        mode = "RGBA"
    if mode in _WITH_ALPHA:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def read_image(path: str | Path) -> Image.Image:
    """Read an image file as an upright 8-bit RGB picture.

    Raises :class:`ImageReadError` with a user-readable reason for empty, truncated,
    unrecognised, oversized or unsupported files. Never writes anything.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    try:
        with Image.open(path) as img:
            fmt = img.format
            if fmt not in ACCEPTED_FORMATS:
                raise ImageReadError(f"unsupported image format {fmt}")
            if img.width * img.height > MAX_PIXELS:
                raise ImageReadError(
                    f"image too large ({img.width} x {img.height} pixels; the limit is "
                    f"{MAX_PIXELS // 1_000_000} million): possible decompression bomb")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # animated GIF / multi-page TIFF: first frame
            img.load()
            img = ImageOps.exif_transpose(img) or img
            rgb = to_rgb(img)
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError("not an image (content is not a known image format)") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageReadError("image too large (possible decompression bomb)") from exc
    except OSError as exc:
        text = str(exc)
        if "truncated" in text.lower():
            raise ImageReadError("truncated image (file ends early)") from exc
        raise ImageReadError(f"unreadable image ({text})") from exc
    except (ValueError, SyntaxError, EOFError, TypeError) as exc:
        raise ImageReadError(f"corrupt image ({exc})") from exc
    if rgb.width < 1 or rgb.height < 1:
        raise ImageReadError("image has no pixels")
    return rgb


def prepared_side(input_size: tuple[int, int] | list[int], crop_pct: float) -> int:
    """Side of the centre square kept before the final crop."""
    return int(math.floor(max(input_size) / crop_pct))


def prepared_square(img: Image.Image, side: int, resize: str) -> np.ndarray:
    """Shorter side resized to ``side``, centre square kept: ``(side, side, 3)`` uint8."""
    w, h = img.size
    scale = side / min(w, h)
    new_w, new_h = max(side, round(w * scale)), max(side, round(h * scale))
    img = img.resize((new_w, new_h), RESAMPLE[resize], reducing_gap=None)
    left, top = (new_w - side) // 2, (new_h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    return np.array(img, dtype=np.uint8)  # a writable copy: torch.from_numpy needs one


def centre_offsets(side_h: int, side_w: int, h: int, w: int) -> tuple[int, int]:
    """(top, left) of the centre ``h x w`` crop: the same in the app and the runtime."""
    return (side_h - h) // 2, (side_w - w) // 2
