"""The pixel rule: how one image file becomes the picture a model sees.

Defined once, here, and used by training, ``predict --run``, the studio and the exported
model's runtime (:mod:`tlstudio.export_runtime`), so the app and an exported model can never
see different pixels. It imports nothing else from tlstudio (an import-linter contract), and
:data:`RULE_STEPS` describes it in words inside every ``preprocessing.json`` so someone
outside can reimplement it.

Formats are recognised by content (Pillow sniffs the header; DICOM has its DICM preamble
or a DICOM name), so a ``.jpg`` that is really a PNG reads fine and a text file named
``.png`` is refused with a reason. DICOM goes through :mod:`.dicom`, high bit depths through
the window of :mod:`.windows`.

A change to what this module does to pixels must change :data:`RULE`: runs and exports record
it, the image cache keys on it, and a run made under another rule is refused rather than fed
different pixels.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from . import dicom
from .windows import PRESETS, WINDOW_HELP, Window, WindowError, apply_window, parse_window

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
    "DICOM (recognised by the DICM preamble or a .dcm/.dicom/.dic/.ima name), read with "
    "pydicom: a multi-frame file gives frame floor(frames / 2), or with frames 'all' each "
    "frame on its own, named file#frame=N (N from 0). Monochrome: the modality LUT "
    "(rescale slope and intercept; Hounsfield units for CT), then the window named by "
    "'window' (see below), then MONOCHROME1 inverted (255 - v); Pixel Padding Value pixels "
    "are 0. RGB and YBR: RGB as decoded by pydicom, scaled from BitsStored to 8 bits; "
    "palette colour: the palette applied, scaled from 16 to 8 bits where its entries go "
    "above 255.",
    "Windows (the 'window' entry; also for 16/32-bit PNG and TIFF): 'file' = the first "
    "Window Centre/Width stored in the DICOM file, else 'auto'; 'auto' = DICOM: the 0.5th to "
    "99.5th percentile of the image's non-padding values, PNG/TIFF: their full range as "
    "above; 'C,W' or a CT preset = the values from C - W/2 to C + W/2; each maps linearly to "
    "0..255 with floor(v + 0.5) after clipping. Three windows joined by '+' give the R, G "
    "and B channels; one window gives the same value in all three.",
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
    """True for a file worth opening while scanning: an image name, or DICOM by content
    (scanners often write DICOM files without an extension)."""
    suffix = path.suffix.lower()
    return (suffix in IMAGE_EXTENSIONS or suffix in dicom.DICOM_EXTENSIONS
            or dicom.has_preamble(path))


def _windowed(img: Image.Image, windows: tuple[Window, ...]) -> Image.Image:
    """16/32-bit integer or float grayscale through the window(s)."""
    preset = next((w.preset for w in windows if w.preset), None)
    if preset:
        raise ImageReadError(f"the {preset} window is for CT in Hounsfield units; this "
                             f"{img.mode} image has no units tlstudio can rely on")
    values = np.asarray(img, dtype=np.float64)
    channels = [apply_window(values, w, np.isfinite(values), None, percentile_auto=False)
                for w in windows]
    if len(channels) == 1:
        return Image.fromarray(channels[0], mode="L").convert("RGB")
    return Image.fromarray(np.stack(channels, axis=-1), mode="RGB")


def to_rgb(img: Image.Image, window: str = "file") -> Image.Image:
    """Any Pillow mode -> 8-bit RGB by the rule (see :data:`RULE_STEPS`)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _HIGH_DEPTH:
        return _windowed(img, parse_window(window))
    if mode == "P":
        img = img.convert("RGBA")  # keeps the palette's transparency (tRNS / GIF index)
        mode = "RGBA"
    if mode in _WITH_ALPHA:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


FRAMES = ("middle", "all")
_FRAME_MARK = "#frame="


def image_key(path: str | Path, frame: int | None = None) -> str:
    """How one image is named in split.json and predictions: the file, and for a frame of a
    multi-frame DICOM taken on its own, ``file#frame=N`` (N from 0)."""
    return str(path) if frame is None else f"{path}{_FRAME_MARK}{frame}"


def parse_image_key(key: str) -> tuple[Path, int | None]:
    """The file and frame of an :func:`image_key`."""
    head, mark, tail = str(key).rpartition(_FRAME_MARK)
    if mark and tail.isdigit():
        return Path(head), int(tail)
    return Path(key), None


def image_entries(key: str | Path, frames: str = "middle") -> list[tuple[Path, int | None]]:
    """The images one file (or image key) stands for: ``(file, None)``, or with frames
    'all' one ``(file, frame)`` per frame of a multi-frame DICOM."""
    path, frame = parse_image_key(str(key))
    if frame is not None or frames != "all" or not dicom.is_dicom(path):
        return [(path, frame)]
    try:
        count = dicom.frames_of(path)
    except dicom.DicomError:
        return [(path, None)]  # reading it will say why
    return [(path, None)] if count == 1 else [(path, k) for k in range(count)]


def read_image(path: str | Path, window: str = "file", frame: int | None = None) -> Image.Image:
    """Read an image file as an upright 8-bit RGB picture, high bit depths (DICOM, 16-bit
    PNG/TIFF) through ``window`` (see :mod:`tlstudio.pixels.windows`).

    Raises :class:`ImageReadError` with a user-readable reason for empty, truncated,
    unrecognised, oversized, undecodable or unsupported files. Never writes anything.
    ``frame`` picks one frame of a multi-frame DICOM (default: the middle one).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError("empty file (0 bytes)")
    try:
        windows = parse_window(window)
    except WindowError as exc:
        raise ImageReadError(str(exc)) from exc
    if dicom.is_dicom(path):
        return _read_dicom(path, windows, frame)
    if frame not in (None, 0):
        raise ImageReadError(f"frame {frame} asked for, but only DICOM files have frames")
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
            rgb = to_rgb(img, window)
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


def _read_dicom(path: Path, windows: tuple[Window, ...], frame: int | None) -> Image.Image:
    try:
        array = dicom.to_rgb_array(path, windows, MAX_PIXELS, frame)
    except dicom.DicomError as exc:
        raise ImageReadError(str(exc)) from exc
    except MemoryError as exc:
        raise ImageReadError("DICOM image too large for memory") from exc
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise ImageReadError("image too large (possible decompression bomb)")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageReadError("image has no pixels")
    return Image.fromarray(np.ascontiguousarray(array), mode="RGB")


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


__all__ = ["ACCEPTED_FORMATS", "FRAMES", "IMAGE_EXTENSIONS", "PRESETS", "image_entries",
           "image_key",
           "parse_image_key", "RESAMPLE", "RULE", "RULE_STEPS",
           "WINDOW_HELP", "ImageReadError", "WindowError", "centre_offsets", "dicom",
           "looks_like_image", "parse_window", "prepared_side", "prepared_square",
           "read_image", "to_rgb"]
