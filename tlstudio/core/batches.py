"""Where fine-tuning batches come from: augmented images, or cached frozen-prefix outputs."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .augment import augment_batch
from .device import DeviceSetup
from .events import Control, Event, Notice, StageProgress
from .inference import autocast, eval_inputs, predict_squares
from .prefix import split_frozen_prefix
from .preprocess import Preprocessing

Emit = Callable[[Event], None]


class ImageBatches:
    """Training batches straight from the prepared uint8 squares.

    Indexing the array (no per-image Python), pinned host memory and non-blocking copies
    on a GPU, augmentation of the whole batch on the device.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, prep: Preprocessing,
                 setup: DeviceSetup, preset: str, batch_size: int, generator: torch.Generator):
        self.images, self.targets, self.prep, self.setup = images, targets, prep, setup
        self.preset, self.batch_size, self.generator = preset, batch_size, generator
        n = len(images)
        self.steps = n // batch_size if n > batch_size else 1  # drop the ragged last batch

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        order = torch.randperm(len(self.images), generator=self.generator).numpy()
        cuda = self.setup.device.type == "cuda"
        for b in range(self.steps):
            idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
            batch = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2)
            targets = torch.from_numpy(self.targets[idx])
            if cuda:
                batch, targets = batch.pin_memory(), targets.pin_memory()
            batch = batch.to(self.setup.device, non_blocking=True)
            x = augment_batch(batch, self.preset, self.prep)
            yield x.contiguous(memory_format=torch.channels_last), targets.to(
                self.setup.device, non_blocking=True)

    def validation_probabilities(self, model: nn.Module, images: np.ndarray,
                                 control: Control) -> np.ndarray:
        return predict_squares(model, images, self.prep, self.setup, self.batch_size, control)


class CachedPrefixBatches:
    """Training batches of frozen-prefix activations: each image as is or mirrored."""

    def __init__(self, views: list[torch.Tensor], targets: np.ndarray, val: torch.Tensor,
                 setup: DeviceSetup, batch_size: int, generator: torch.Generator):
        self.views, self.val, self.setup = views, val, setup
        self.targets = torch.from_numpy(targets)
        self.batch_size, self.generator = batch_size, generator
        n = len(targets)
        self.steps = n // batch_size if n > batch_size else 1

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        n = len(self.targets)
        order = torch.randperm(n, generator=self.generator)
        which = torch.randint(len(self.views), (n,), generator=self.generator)
        for b in range(self.steps):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            view = which[idx]
            parts = [self.views[v][idx[view == v].to(self.views[v].device)]
                     for v in range(len(self.views))]
            labels = [self.targets[idx[view == v]] for v in range(len(self.views))]
            yield (torch.cat(parts).to(self.setup.device, non_blocking=True),
                   torch.cat(labels).to(self.setup.device, non_blocking=True))

    @torch.inference_mode()
    def validation_probabilities(self, suffix: nn.Module, _images, control: Control):
        suffix.eval()
        out = []
        for start in range(0, len(self.val), self.batch_size):
            control.checkpoint()
            x = self.val[start : start + self.batch_size].to(self.setup.device)
            with autocast(self.setup):
                out.append(suffix(x).float().softmax(dim=1).cpu())
        return torch.cat(out).numpy()


@torch.inference_mode()
def prefix_activations(
    prefix: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
    batch_size: int, control: Control, emit: Emit, flip: bool, stage: str,
    budget_bytes: int,
) -> torch.Tensor | None:
    """Frozen-prefix outputs for every image (kept on the training device when it is a GPU);
    None when they would not fit in ``budget_bytes``."""
    prefix.eval()
    store = setup.device if setup.device.type == "cuda" else torch.device("cpu")
    out: torch.Tensor | None = None
    for start, x in eval_inputs(images, prep, setup, batch_size, control, flip):
        with autocast(setup):
            y = prefix(x)
        if out is None:
            dtype = setup.amp_dtype or torch.float32
            per_image = y[0].numel() * torch.finfo(dtype).bits // 8
            if per_image * len(images) > budget_bytes:
                return None
            out = torch.empty((len(images), *y.shape[1:]), dtype=dtype, device=store)
        out[start : start + len(y)] = y.to(out.dtype)
        emit(StageProgress(stage, min(start + batch_size, len(images)), len(images)))
    return out


def cached_prefix(model, data, prep, config, setup, emit, control, generator):
    """CachedPrefixBatches and the suffix to train, or None to run the whole network."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    split = split_frozen_prefix(model, frozen) if config.cache_frozen_prefix else None
    if split is None:
        return None
    prefix, suffix = split
    flips = [False, True] if config.augmentation != "none" else [False]
    share = config.prefix_cache_mb * 2**20 // (len(flips) + 1)
    views = []
    for flip in flips:
        acts = prefix_activations(prefix, data.train_images, prep, setup, config.batch_size,
                                  control, emit, flip, "frozen layers, once", share)
        if acts is None:
            emit(Notice("frozen-layer outputs exceed the memory budget; running the whole "
                        "network each batch"))
            return None
        views.append(acts)
    val = prefix_activations(prefix, data.val_images, prep, setup, config.batch_size,
                             control, emit, False, "frozen layers, validation", share)
    if val is None:
        return None
    emit(Notice(f"frozen layers computed once ({len(prefix)} units); only the trainable "
                "rest runs each epoch"))
    return suffix, CachedPrefixBatches(views, data.train_targets, val, setup,
                                       config.batch_size, generator)
