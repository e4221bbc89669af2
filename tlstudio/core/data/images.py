"""Reading one image file into the RGB picture every backbone expects.

Formats are recognised by content (Pillow sniffs the header), never by extension, so a
``.jpg`` that is really a PNG reads fine and a text file named ``.png`` is refused with a
reason. Every pixel mode (RGBA, palette, 16-bit, grayscale, CMYK) becomes 8-bit RGB the
same way, and EXIF orientation is applied, so the model sees what the user sees.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Extensions we look at when scanning a folder. Content decides the format; this list only
# keeps us from opening every file of a folder (notes, spreadsheets, ...).
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dib"}
)
# What Pillow may report for a file we accept.
ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "BMP", "TIFF", "WEBP", "GIF", "MPO", "DIB"})

# Pillow refuses images above ~179 MP as a decompression-bomb guard; keep that guard.
Image.MAX_IMAGE_PIXELS = 180_000_000


class ImageReadError(Exception):
    """An image could not be read; ``str(err)`` is a reason fit to show a user."""


def looks_like_image(path: Path) -> bool:
    """True when the file name suggests an image worth opening while scanning."""
    return path.suffix.lower() in IMAGE_EXTENSIONS


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB consistently.

    Transparent areas are composited on black (radiology and microscopy backgrounds are
    dark), 16/32-bit grayscale is scaled by its full range, not clipped at 255.
    """
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if hi > lo:
            arr = (arr - lo) * (255.0 / (hi - lo))
        else:
            arr = np.zeros_like(arr)
        gray = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), mode="L")
        return gray.convert("RGB")
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def read_image(path: str | Path) -> Image.Image:
    """Read an image file as an upright 8-bit RGB picture.

    Raises :class:`ImageReadError` with a user-readable reason for empty, truncated,
    unrecognised or unsupported files. Never writes anything.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format
                if fmt not in ACCEPTED_FORMATS:
                    raise ImageReadError(f"unsupported image format {fmt}")
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
    except (ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(f"corrupt image ({exc})") from exc
    if rgb.width < 1 or rgb.height < 1:
        raise ImageReadError("image has no pixels")
    return rgb
