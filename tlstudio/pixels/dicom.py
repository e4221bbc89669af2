"""DICOM files -> the RGB picture a model sees, and the few header facts tlstudio uses.

pydicom reads the file; compressed transfer syntaxes are decoded by the pylibjpeg plugins
(libjpeg: JPEG and JPEG-LS; openjpeg: JPEG 2000; rle: RLE). Monochrome images go through
the modality LUT (rescale slope/intercept: Hounsfield units for CT), pixel padding is left out
of windowing and shown black, the window maps values to 0..255, and MONOCHROME1 is inverted
so that bone is bright as on every viewer. Colour images (RGB, YBR, palette) become 8-bit
RGB. A multi-frame file gives its middle frame.

Nothing here returns or logs patient attributes: :func:`patient_group` gives a keyed hash
(HMAC) of PatientID (or StudyInstanceUID) so a split can keep a patient's images together
without the ID ever being stored; the caller holds the key (``core.pseudonyms``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .windows import Window, WindowError, apply_window, needs_hounsfield

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom", ".dic", ".ima"})

# What decodes each compressed transfer syntax, for messages when it is missing or fails.
_DECODERS = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg or python-gdcm",
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg or python-gdcm",
    "1.2.840.10008.1.2.5": "pylibjpeg-rle (or pydicom itself)",
}


class DicomError(Exception):
    """A DICOM file that cannot become a picture; the message is for the user."""


def has_preamble(path: Path) -> bool:
    """DICOM by content: ``DICM`` after the 128-byte preamble (any file name)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def is_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_EXTENSIONS or has_preamble(path)


def _read(path: Path, pixels: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels,
                               force=not has_preamble(path))
    except InvalidDicomError as exc:
        raise DicomError(f"not a DICOM file ({exc})") from exc
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise DicomError(f"damaged DICOM header ({str(exc)[:160]})") from exc


def _syntax(ds) -> tuple[str, str]:
    uid = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if uid is None:
        return "", "unknown transfer syntax"
    return str(uid), getattr(uid, "name", str(uid))


def _decoded(ds) -> np.ndarray:
    uid, name = _syntax(ds)
    if "PixelData" not in ds and "FloatPixelData" not in ds and \
            "DoubleFloatPixelData" not in ds:
        raise DicomError("DICOM file without an image (no pixel data)")
    try:
        return ds.pixel_array
    except Exception as exc:  # pydicom and its plugins raise many types
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        decoder = _DECODERS.get(uid)
        hint = f"; it is decoded by {decoder}" if decoder else ""
        raise DicomError(f"cannot decode DICOM pixel data in transfer syntax {name} "
                         f"({uid or '?'}): {first}{hint}") from exc


def frame_count(ds) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _pick_frame(ds, array: np.ndarray, colour: bool, frame: int | None) -> np.ndarray:
    """The asked frame of a multi-frame file; the middle one when none is asked."""
    frames = frame_count(ds)
    if frames > 1 and array.ndim == (4 if colour else 3):
        index = frames // 2 if frame is None else frame
        if not 0 <= index < frames:
            raise DicomError(f"frame {index} asked for, but the file holds {frames} frames")
        return array[index]
    if frame not in (None, 0):
        raise DicomError(f"frame {frame} asked for, but the file holds one frame")
    return array


def frames_of(path: Path) -> int:
    """How many frames a DICOM file holds (header only)."""
    return frame_count(_read(path, pixels=False))


def _first(value) -> float | None:
    """A DICOM value that may hold several (Window Centre often does): the first one."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def stored_window(ds) -> tuple[float, float] | None:
    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is None or width is None or not np.isfinite([centre, width]).all() or width <= 0:
        return None
    return centre, width


def _padding(ds, raw: np.ndarray) -> np.ndarray | None:
    """True where a pixel holds data (Pixel Padding Value / Range Limit excluded)."""
    value = ds.get("PixelPaddingValue")
    if value is None:
        return None
    limit = ds.get("PixelPaddingRangeLimit")
    low, high = (value, value) if limit is None else sorted((value, limit))
    return ~((raw >= low) & (raw <= high))


def _colour(ds, array: np.ndarray) -> np.ndarray:
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        array = apply_color_lut(array, ds)
        # a 16-bit palette whose entries all stay below 256 holds 8-bit colours (seen in
        # big-endian files); scaling it down would give a black picture
        bits = 16 if array.dtype.itemsize > 1 and int(array.max(initial=0)) > 255 else 8
    else:  # RGB, and YBR that pydicom converted to RGB while decoding
        bits = int(ds.get("BitsStored", 8) or 8)
    if bits > 8:
        array = np.floor(array.astype(np.float64) * (255.0 / (2**bits - 1)) + 0.5)
    return np.clip(array, 0, 255).astype(np.uint8)


def to_rgb_array(path: Path, windows: tuple[Window, ...], max_pixels: int,
                 frame: int | None = None) -> np.ndarray:
    """``(H, W, 3)`` uint8 by the pixel rule; raises :class:`DicomError` with a reason."""
    ds = _read(path, pixels=True)
    try:
        rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except (TypeError, ValueError):
        rows = columns = 0
    if rows * columns > max_pixels:  # checked before decoding: a small file can claim a lot
        raise DicomError(f"image too large ({columns} x {rows} pixels; the limit is "
                         f"{max_pixels // 1_000_000} million): possible decompression bomb")
    array = _decoded(ds)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples == 3 or photometric == "PALETTE COLOR":
        return _colour(ds, _pick_frame(ds, array, samples == 3, frame))
    raw = _pick_frame(ds, array, False, frame)
    if raw.ndim != 2:
        raise DicomError(f"unexpected DICOM image shape {raw.shape}")
    from pydicom.pixels import apply_modality_lut

    valid = _padding(ds, raw)
    values = np.asarray(apply_modality_lut(raw, ds), dtype=np.float64)
    preset = needs_hounsfield(windows)
    modality = str(ds.get("Modality", "")).upper()
    if preset and modality != "CT":
        raise DicomError(f"the {preset} window is for CT in Hounsfield units; this image is "
                         f"{modality or 'of unknown modality'}")
    stored = stored_window(ds)
    channels = [apply_window(values, w, valid, stored, percentile_auto=True) for w in windows]
    if photometric == "MONOCHROME1":  # low values are white: turn it round like a viewer
        channels = [255 - c for c in channels]
    if valid is not None:
        channels = [np.where(valid, c, 0).astype(np.uint8) for c in channels]
    if len(channels) == 1:
        channels *= 3
    return np.stack(channels, axis=-1)


def facts(path: Path) -> dict:
    """What the Data step shows about one DICOM file: no patient attribute at all."""
    ds = _read(path, pixels=False)
    uid, name = _syntax(ds)
    window = stored_window(ds)
    return {
        "modality": str(ds.get("Modality", "")) or "?",
        "size": f"{ds.get('Columns', '?')} x {ds.get('Rows', '?')}",
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "bits stored": ds.get("BitsStored"),
        "photometric": str(ds.get("PhotometricInterpretation", "?")),
        "transfer syntax": name,
        "stored window": f"{window[0]:g},{window[1]:g}" if window else "none",
    }


SUBGROUP_ATTRIBUTES = {"Manufacturer": "manufacturer", "ManufacturerModelName": "scanner model",
                       "Modality": "modality", "BodyPartExamined": "body part",
                       "PatientSex": "sex"}


def _subgroups_of(ds) -> dict[str, str]:
    """Header values that results are broken down by (scanner maker, model, modality, body
    part, sex, age in decades): only ever reported as counts and rates per value, never per
    file; no identifying attribute is read."""
    out = {}
    for key, name in SUBGROUP_ATTRIBUTES.items():
        value = str(ds.get(key, "") or "").strip()
        if value:
            out[name] = value
    age = str(ds.get("PatientAge", "") or "").strip()  # e.g. 047Y
    if len(age) == 4 and age[:3].isdigit() and age[3] == "Y":
        decade = int(age[:3]) // 10 * 10
        out["age"] = f"{decade}–{decade + 9}"
    return out


def _group_of(ds, key: bytes) -> str | None:
    """A pseudonym of PatientID (else StudyInstanceUID): an HMAC keyed by ``key``, so that a
    patient's images stay in one part of a split without the ID itself ever being kept, and
    without a plain hash anyone could reverse by hashing every possible ID."""
    for attribute in ("PatientID", "StudyInstanceUID"):
        value = str(ds.get(attribute, "") or "").strip()
        if value:
            digest = hmac.new(key, f"{attribute}|{value}".encode(), hashlib.sha256)
            return f"{'patient' if attribute == 'PatientID' else 'study'}-" \
                   f"{digest.hexdigest()[:16]}"
    return None


def grouping(path: Path, key: bytes) -> tuple[str | None, dict[str, str]]:
    """(the patient's pseudonym under ``key``, the subgroup values) of one file, from one
    header read."""
    try:
        ds = _read(path, pixels=False)
    except DicomError:
        return None, {}
    return _group_of(ds, key), _subgroups_of(ds)


def patient_group(path: Path, key: bytes) -> str | None:
    return grouping(path, key)[0]


__all__ = ["DICOM_EXTENSIONS", "DicomError", "WindowError", "facts", "frames_of",
           "grouping", "has_preamble", "is_dicom", "patient_group", "stored_window",
           "to_rgb_array"]
