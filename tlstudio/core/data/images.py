"""Reading one image file into the RGB picture every backbone expects.

The rule itself lives in :mod:`tlstudio.pixels`, outside core, because the exported model's
runtime applies it too and must not import the engine; this module is the name the engine
uses for it.
"""

from __future__ import annotations

from ...pixels import (
    ACCEPTED_FORMATS,
    IMAGE_EXTENSIONS,
    RULE,
    ImageReadError,
    looks_like_image,
    read_image,
    to_rgb,
)

__all__ = ["ACCEPTED_FORMATS", "IMAGE_EXTENSIONS", "RULE", "ImageReadError",
           "looks_like_image", "read_image", "to_rgb"]
