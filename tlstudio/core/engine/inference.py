"""Forward passes without training: evaluation crops in batches, frozen features,
probabilities. Shared by the trainer, the batch sources, prediction and export checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..data.preprocess import Preprocessing, eval_view, normalize
from ..data.store import release_mapped
from .device import DeviceSetup
from .events import Control, Event, StageProgress


def forward_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled features before the classifier (timm's ``pre_logits``)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def autocast(setup: DeviceSetup):
    if setup.amp_dtype is None:
        return torch.autocast(device_type=setup.device.type, enabled=False)
    return torch.autocast(device_type=setup.device.type, dtype=setup.amp_dtype)


def eval_inputs(images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
                batch_size: int, control: Control | None = None, flip: bool = False):
    """``(start, x)``: normalised evaluation crops of prepared squares (optionally mirrored),
    a batch at a time, on the training device; the stop/pause checkpoint between batches."""
    for start in range(0, len(images), batch_size):
        if control is not None:
            control.checkpoint()
        release_mapped()  # resident memory stays bounded over a mapped array (``store``)
        batch = eval_view(torch.from_numpy(images[start : start + batch_size]).permute(0, 3, 1, 2),
                          prep)
        if flip:
            batch = batch.flip(-1)
        x = normalize(batch.to(setup.device, non_blocking=True), prep)
        yield start, x.contiguous(memory_format=torch.channels_last)


def extract_features(
    model: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
    batch_size: int, control: Control, emit: Callable[[Event], None], flip: bool = False,
    stage: str = "features",
) -> torch.Tensor:
    """Frozen-backbone features of every image (evaluation crop, optionally mirrored); they
    stay on the training device."""
    model.eval()
    # outside inference mode: weights re-laid out inside it could never train again (the
    # Recommended mode fine-tunes after its probe)
    model.to(memory_format=torch.channels_last)
    chunks = []
    with torch.inference_mode():
        for start, x in eval_inputs(images, prep, setup, batch_size, control, flip):
            with autocast(setup):
                chunks.append(forward_features(model, x).float())
            emit(StageProgress(stage, min(start + batch_size, len(images)), len(images)))
    return torch.cat(chunks)


@torch.inference_mode()
def predict_squares(
    model: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
    batch_size: int, control: Control | None = None,
) -> np.ndarray:
    """Class probabilities for prepared squares (evaluation crop)."""
    model.eval()
    out = []
    for _, x in eval_inputs(images, prep, setup, batch_size, control):
        with autocast(setup):
            out.append(model(x).float().softmax(dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def head_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) from one pass: timm's ``forward_head`` is the
    classifier applied to its ``pre_logits`` output, so the logits equal ``model(x)``."""
    features = forward_features(model, x)
    return model.get_classifier()(features), features


@torch.inference_mode()
def predict_with_features(
    model: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
    batch_size: int, control: Control | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and penultimate features (float32) for prepared squares."""
    model.eval()
    probs, feats = [], []
    for _, x in eval_inputs(images, prep, setup, batch_size, control):
        with autocast(setup):
            logits, features = head_and_features(model, x)
        probs.append(logits.float().softmax(dim=1).cpu())
        feats.append(features.float().cpu())
    if not probs:
        return np.zeros((0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.float32)
    return torch.cat(probs).numpy(), torch.cat(feats).numpy()
