"""Windows: which range of a high-bit-depth image becomes the 0..255 a model sees.

A radiologist reads CT through a window (centre and width in Hounsfield units); tlstudio
offers the same choices and records the one used with the run, so training, predict, the
studio and the exported model apply the same one:

* ``file`` (the default): the window stored in the DICOM file (its first Window Centre /
  Width); an image without one gets ``auto``.
* ``auto``: DICOM, the 0.5th to 99.5th percentile of the image's own values (padding left
  out); 16/32-bit PNG and TIFF, their full range (smallest to largest value).
* a CT preset (:data:`PRESETS`), only for CT images in Hounsfield units.
* ``C,W``: a fixed centre and width in the image's own units (after rescale slope/intercept).
* three of the above joined by ``+`` (``brain+subdural+bone``): one per colour channel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# CT windows in Hounsfield units, (centre, width), as commonly taught for reading CT.
PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "abdomen": (50.0, 400.0),
}
AUTO_PERCENTILES = (0.5, 99.5)
WINDOW_HELP = ("file, auto, a CT preset (" + ", ".join(PRESETS) + "), a centre and width "
               "like 40,80, or three of these joined by + (one per colour channel)")


class WindowError(ValueError):
    """A window choice that cannot be applied; the message says why and what is allowed."""


@dataclass(frozen=True)
class Window:
    kind: str  # file | auto | fixed
    centre: float = 0.0
    width: float = 0.0
    preset: str | None = None  # the CT preset this fixed window came from

    def describe(self) -> str:
        if self.preset:
            return f"{self.preset} ({self.centre:g},{self.width:g} HU)"
        if self.kind == "fixed":
            return f"{self.centre:g},{self.width:g}"
        return self.kind


def parse_window(text: str) -> tuple[Window, ...]:
    """``"file"``, ``"auto"``, a preset, ``"C,W"`` or three of them joined by ``+``."""
    parts = [p.strip().lower() for p in str(text).split("+")]
    if len(parts) not in (1, 3) or not all(parts):
        raise WindowError(f"window '{text}': give one window or three joined by + "
                          f"(one per colour channel); windows are {WINDOW_HELP}")
    return tuple(_one(part, text) for part in parts)


def _one(part: str, text: str) -> Window:
    if part in ("file", "auto"):
        return Window(part)
    if part in PRESETS:
        centre, width = PRESETS[part]
        return Window("fixed", centre, width, preset=part)
    try:
        centre, width = (float(v) for v in part.split(","))
    except ValueError:
        raise WindowError(f"window '{text}' is not one of {WINDOW_HELP}") from None
    if not (np.isfinite(centre) and np.isfinite(width)) or width <= 0:
        raise WindowError(f"window '{text}': the centre must be a number and the width a "
                          "number above 0")
    return Window("fixed", centre, width)


def needs_hounsfield(windows: tuple[Window, ...]) -> str | None:
    """The preset that only makes sense on CT, if any."""
    return next((w.preset for w in windows if w.preset), None)


def apply_window(values: np.ndarray, window: Window, valid: np.ndarray | None,
                 stored: tuple[float, float] | None, percentile_auto: bool) -> np.ndarray:
    """Float values -> uint8 by one window. ``valid`` masks padding out of ``auto``;
    ``stored`` is the file's own (centre, width) for ``file``."""
    if window.kind == "file" and stored is not None:
        window = Window("fixed", *stored)
    if window.kind == "fixed":
        low = window.centre - window.width / 2.0
        scaled = (values - low) * (255.0 / window.width)
    else:
        pool = values[valid] if valid is not None else values.ravel()
        pool = pool[np.isfinite(pool)]
        if pool.size == 0:
            return np.zeros(values.shape, dtype=np.uint8)
        if percentile_auto:
            low, high = (float(v) for v in np.percentile(pool, AUTO_PERCENTILES))
            if high <= low:
                low, high = float(pool.min()), float(pool.max())
        else:
            low, high = float(pool.min()), float(pool.max())
        if high <= low:
            return np.zeros(values.shape, dtype=np.uint8)
        scaled = (values - low) * (255.0 / (high - low))
    scaled = np.where(np.isfinite(scaled), scaled, 0.0)
    return np.floor(np.clip(scaled + 0.5, 0, 255)).astype(np.uint8)
