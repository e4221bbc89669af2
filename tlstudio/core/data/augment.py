"""Batch augmentation on the batch's own device (GPU when training there, else CPU).

One ``affine_grid`` + ``grid_sample`` call crops, rescales, mirrors and rotates every image
of a batch with its own random parameters, and per-image brightness/contrast/saturation
factors follow — no per-image Python work, no round trip to the CPU. Input: prepared uint8
squares ``(N, 3, S, S)``; output: normalised float images ``(N, 3, H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .preprocess import Preprocessing, eval_view, normalize


@dataclass(frozen=True)
class Recipe:
    area: tuple[float, float]  # share of the prepared square the crop covers
    ratio: tuple[float, float]  # crop aspect ratio range
    rotate: float  # degrees, +-
    flip: bool
    brightness: float
    contrast: float
    saturation: float


RECIPES = {
    "light": Recipe((0.0, 0.0), (1.0, 1.0), 0.0, True, 0.0, 0.0, 0.0),  # crop at input size
    "photo": Recipe((0.35, 1.0), (3 / 4, 4 / 3), 0.0, True, 0.3, 0.3, 0.3),
    "grayscale-medical": Recipe((0.7, 1.0), (0.9, 1.1), 10.0, True, 0.2, 0.2, 0.0),
}


def _uniform(n: int, low: float, high: float, device, generator) -> torch.Tensor:
    return torch.rand(n, device=device, generator=generator) * (high - low) + low


def augment_batch(
    squares: torch.Tensor, preset: str, prep: Preprocessing,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random training views of a uint8 batch, normalised with the backbone's mean/std."""
    if preset == "none":
        return normalize(eval_view(squares, prep), prep)
    recipe = RECIPES[preset]
    n, _, side, _ = squares.shape
    h, w = prep.input_size
    device = squares.device
    rand = lambda lo, hi: _uniform(n, lo, hi, device, generator)  # noqa: E731
    if recipe.area == (0.0, 0.0):  # a plain random crop of the input size within the margin
        scale_x = torch.full((n,), w / side, device=device)
        scale_y = torch.full((n,), h / side, device=device)
    else:
        area = rand(*recipe.area)
        log_ratio = rand(math.log(recipe.ratio[0]), math.log(recipe.ratio[1]))
        ratio = torch.exp(log_ratio)
        scale_x = torch.sqrt(area * ratio).clamp(max=1.0)
        scale_y = torch.sqrt(area / ratio).clamp(max=1.0)
    # centre anywhere that keeps the crop inside the square
    shift_x = rand(-1.0, 1.0) * (1.0 - scale_x)
    shift_y = rand(-1.0, 1.0) * (1.0 - scale_y)
    angle = rand(-recipe.rotate, recipe.rotate) * (math.pi / 180.0)
    mirror = torch.where(rand(0.0, 1.0) < 0.5, -1.0, 1.0) if recipe.flip else torch.ones(
        n, device=device)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([
        torch.stack([scale_x * cos * mirror, -scale_y * sin, shift_x], dim=1),
        torch.stack([scale_x * sin * mirror, scale_y * cos, shift_y], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
    x = F.grid_sample(squares.float(), grid, mode="bilinear", padding_mode="reflection",
                      align_corners=False)
    if recipe.brightness or recipe.contrast or recipe.saturation:
        x = _jitter(x, recipe, rand)
    return normalize(x, prep)


def _jitter(x: torch.Tensor, recipe: Recipe, rand) -> torch.Tensor:
    """Per-image brightness, contrast and saturation factors on 0..255 floats."""
    shape = (-1, 1, 1, 1)
    if recipe.brightness:
        x = x * rand(1 - recipe.brightness, 1 + recipe.brightness).view(shape)
    gray = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    if recipe.contrast:
        mean = gray.mean(dim=(2, 3), keepdim=True)
        factor = rand(1 - recipe.contrast, 1 + recipe.contrast).view(shape)
        x = (x - mean) * factor + mean
        gray = (gray - mean) * factor + mean
    if recipe.saturation:
        factor = rand(1 - recipe.saturation, 1 + recipe.saturation).view(shape)
        x = (x - gray) * factor + gray
    return x.clamp(0.0, 255.0)
