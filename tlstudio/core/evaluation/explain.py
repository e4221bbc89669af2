"""Grad-CAM: where in the image the model found the evidence for a class.

Gradient-weighted class activation maps (Selvaraju et al., 2017) over the last spatial
activations of the backbone: for CNNs (EfficientNet, MobileNet, ResNet, ConvNeXt) the final
feature map; for Vision Transformers the patch tokens entering the last block (the prefix
tokens, class and register tokens, are dropped; after the last block only the class token
still reaches the head, so its gradient says nothing about places). Activations are detached
and made to require gradients, so frozen backbones explain as well as trained ones.

The score explained is the class's logit minus the mean of the other classes' logits, so the
map shows what speaks for this class rather than the others.

A heatmap is a claim like any number: it is computed on the very crop the model saw, and
mapped back onto the original image through the pixel rule's geometry (shorter side resized,
centre square, centre crop). Parts of the image the model never saw are 0, not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from ...pixels import centre_offsets
from ..data.preprocess import Preprocessing, eval_view, normalize, prepare


@dataclass
class Explanation:
    """One image's heatmap: float32 in [0, 1] with the original image's height and width."""

    heatmap: np.ndarray
    class_index: int
    flat: bool  # no positive evidence anywhere: the map is all zeros, not a localisation
    image: Image.Image | None = None  # the picture explained, for overlays (not read again)


def _prefix_tokens(model: nn.Module) -> int:
    return int(getattr(model, "num_prefix_tokens", 0) or 0)


def is_transformer(model: nn.Module) -> bool:
    return hasattr(model, "blocks") and hasattr(model, "patch_embed") \
        and hasattr(model, "num_prefix_tokens")


def _margin(logits: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """The class's logit minus the mean of the others': evidence *for this class rather than
    the others*. The raw logit would also light up what every class shares (background), and
    the log-probability's gradient vanishes on confident images."""
    k = logits.shape[1]
    mine = logits.gather(1, chosen[:, None])[:, 0]
    others = (logits.sum(dim=1) - mine) / max(k - 1, 1)
    return (mine - others).sum()


def _transformer_maps(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None):
    """Token activations entering the last block, and their gradients."""
    saved: dict[str, torch.Tensor] = {}

    def take(_module, args):
        tokens = args[0].detach().requires_grad_(True)
        saved["tokens"] = tokens
        return (tokens, *args[1:])

    handle = model.blocks[-1].register_forward_pre_hook(take)
    try:
        logits = model(x)
    finally:
        handle.remove()
    chosen = logits.argmax(dim=1) if classes is None else classes
    (grad,) = torch.autograd.grad(_margin(logits, chosen), saved["tokens"])
    tokens = saved["tokens"][:, _prefix_tokens(model):]
    grad = grad[:, _prefix_tokens(model):]
    gh, gw = (int(v) for v in model.patch_embed.grid_size)
    # (B, N, C) -> (B, C, gh, gw)
    to_map = lambda t: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], gh, gw)  # noqa: E731
    return to_map(tokens), to_map(grad), chosen, logits


def _cnn_maps(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None):
    """Final feature map and its gradients."""
    features = model.forward_features(x).detach().requires_grad_(True)
    logits = model.forward_head(features)
    chosen = logits.argmax(dim=1) if classes is None else classes
    (grad,) = torch.autograd.grad(_margin(logits, chosen), features)
    return features, grad, chosen, logits


def grad_cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(maps (B, h, w) >= 0 at the activations' resolution, explained classes)`` for
    normalised inputs ``x``; ``classes`` None explains each image's top class."""
    model.eval()
    with torch.enable_grad():
        maker = _transformer_maps if is_transformer(model) else _cnn_maps
        activations, grads, chosen, _ = maker(model, x.float(), classes)
        weights = grads.mean(dim=(2, 3), keepdim=True)
        maps = torch.relu((weights * activations).sum(dim=1))
    return maps.detach(), chosen.detach()


def to_original(cam: np.ndarray, image_size: tuple[int, int], prep: Preprocessing
                ) -> np.ndarray:
    """A map over the model's crop -> the original image (``image_size`` = (W, H)),
    following :func:`tlstudio.pixels.prepared_square` and the centre crop exactly."""
    w, h = image_size
    side = prep.prepared_size
    crop_h, crop_w = prep.input_size
    up = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))[None, None],
        size=(crop_h, crop_w), mode="bilinear", align_corners=False)[0, 0].numpy()
    scale = side / min(w, h)
    new_w, new_h = max(side, round(w * scale)), max(side, round(h * scale))
    left, top = (new_w - side) // 2, (new_h - side) // 2
    ctop, cleft = centre_offsets(side, side, crop_h, crop_w)
    # each original pixel's centre, in resized pixels, then in crop pixels
    ys = np.floor((np.arange(h) + 0.5) * new_h / h).astype(np.int64) - top - ctop
    xs = np.floor((np.arange(w) + 0.5) * new_w / w).astype(np.int64) - left - cleft
    inside_y, inside_x = (ys >= 0) & (ys < crop_h), (xs >= 0) & (xs < crop_w)
    out = np.zeros((h, w), dtype=np.float32)
    out[np.ix_(inside_y, inside_x)] = up[np.ix_(ys[inside_y], xs[inside_x])]
    return out


def explain_images(model: nn.Module, images: list[Image.Image], prep: Preprocessing,
                   device: torch.device | str = "cpu", classes: list[int | None] | None = None,
                   batch_size: int = 16) -> list[Explanation]:
    """Grad-CAM for pictures already read by the pixel rule, each mapped onto its own size.
    ``classes[i]`` None (or no list) explains what the model's top class is."""
    device = torch.device(device)
    model = model.to(device).eval()
    out: list[Explanation] = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        squares = torch.from_numpy(np.stack([prepare(img, prep) for img in chunk]))
        x = normalize(eval_view(squares.permute(0, 3, 1, 2), prep).to(device), prep)
        wanted = (classes or [None] * len(images))[start : start + batch_size]
        if all(c is None for c in wanted):
            target = None
        else:  # top class where none was asked for
            with torch.inference_mode():
                top = model(x).argmax(dim=1).cpu()
            target = torch.tensor([int(top[i]) if c is None else int(c)
                                   for i, c in enumerate(wanted)], device=device)
        maps, chosen = grad_cam(model, x, target)
        for img, cam, cls in zip(chunk, maps.cpu().numpy(), chosen.cpu().tolist(),
                                 strict=True):
            heat = to_original(cam, img.size, prep)
            peak = float(heat.max())
            flat = not np.isfinite(peak) or peak <= 0.0
            heat = np.zeros_like(heat) if flat else np.clip(heat / peak, 0.0, 1.0)
            out.append(Explanation(heat.astype(np.float32), int(cls), flat, img))
    return out


def colour_map(heat: np.ndarray) -> np.ndarray:
    """[0, 1] -> RGB uint8 from dark blue through green and yellow to red."""
    stops = np.array([[0.0, 0, 0, 130], [0.25, 0, 90, 255], [0.5, 40, 220, 120],
                      [0.75, 255, 220, 0], [1.0, 220, 20, 20]])
    rgb = [np.interp(heat, stops[:, 0], stops[:, c]) for c in (1, 2, 3)]
    return np.stack(rgb, axis=-1).astype(np.uint8)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """The heatmap laid over the picture; strength follows the heat, so cold areas stay
    readable."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    weight = (alpha * np.sqrt(heat))[..., None]
    mixed = base * (1.0 - weight) + colour_map(heat).astype(np.float32) * weight
    return Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))
