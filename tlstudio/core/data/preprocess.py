"""Preprocessing and augmentation: from a decoded picture to the tensor a backbone reads.

Everything comes from the backbone's ``pretrained_cfg`` (size, crop fraction, resize
method, mean/std) — EfficientNet-Lite wants mean=std=0.5, ResNets the ImageNet statistics —
never from hard-coded constants. The split is:

* ``prepare`` (once per image, CPU): shorter side resized to ``input/crop_pct``, centre
  square kept, as uint8. This is what gets decoded once and cached.
* ``eval_view`` / ``augment.augment_batch`` (per use, cheap): the input size out of that
  square.
* ``normalize`` (per batch, on the device): uint8 -> float, mean/std.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from PIL import Image

from ...pixels import RESAMPLE as _PIL_RESAMPLE
from ...pixels import RULE, centre_offsets, prepared_side, prepared_square

AUGMENTATIONS = ("none", "light", "photo", "grayscale-medical")


@dataclass(frozen=True)
class Preprocessing:
    input_size: tuple[int, int]  # (H, W)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    # How decoded files become RGB (tlstudio.pixels); runs made before it was recorded used
    # the same rule, so a missing entry reads as the first version.
    pixel_rule: str = RULE
    # Which range of DICOM / 16-bit values becomes 0..255 (tlstudio.pixels.windows).
    window: str = "file"
    # Multi-frame DICOM: the middle frame, or every frame as an image of its own.
    frames: str = "middle"

    @classmethod
    def from_pretrained_cfg(cls, cfg: dict) -> Preprocessing:
        _, h, w = cfg.get("input_size", (3, 224, 224))
        interpolation = cfg.get("interpolation", "bicubic")
        return cls(
            input_size=(int(h), int(w)),
            mean=tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))),
            std=tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))),
            interpolation=interpolation if interpolation in _PIL_RESAMPLE else "bicubic",
            crop_pct=float(cfg.get("crop_pct") or 0.875),
        )

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(
            input_size=tuple(data["input_size"]), mean=tuple(data["mean"]),
            std=tuple(data["std"]), interpolation=data["interpolation"],
            crop_pct=float(data["crop_pct"]),
            pixel_rule=str(data.get("pixel_rule", "tlstudio-pixels/1")),
            window=str(data.get("window", "file")),
            frames=str(data.get("frames", "middle")),
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        data["mean"], data["std"] = list(self.mean), list(self.std)
        return data

    def with_window(self, window: str, frames: str = "middle") -> Preprocessing:
        return replace(self, window=window, frames=frames)

    @property
    def prepared_size(self) -> int:
        """Side of the stored square: the resize target before the centre crop."""
        return prepared_side(self.input_size, self.crop_pct)


def prepare(img: Image.Image, prep: Preprocessing) -> np.ndarray:
    """Resize the shorter side to ``prepared_size`` and keep the centre square (HxWx3 uint8)."""
    return prepared_square(img, prep.prepared_size, prep.interpolation)


def eval_view(square: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """Centre crop of the input size from prepared uint8 CHW (or NCHW) squares."""
    h, w = prep.input_size
    top, left = centre_offsets(square.shape[-2], square.shape[-1], h, w)
    return square[..., top : top + h, left : left + w]


def normalize(batch: torch.Tensor, prep: Preprocessing) -> torch.Tensor:
    """uint8 NCHW -> float normalised with the backbone's mean/std, on the batch's device."""
    mean = torch.tensor(prep.mean, device=batch.device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(prep.std, device=batch.device).view(1, 3, 1, 1) * 255.0
    return (batch.float() - mean) / std
