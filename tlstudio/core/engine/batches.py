"""Where training batches come from, and how the validation part is scored on the same path.

Three sources, one protocol (``len``, iteration of ``(x, y)``, ``generators()``,
``validate(net, control)``):

* :class:`FeatureBatches`: frozen-backbone features (the linear probe trains the head alone);
* :class:`ImageBatches`: augmented images through the whole trainable network;
* :class:`CachedPrefixBatches`: frozen-prefix activations computed once, as is or mirrored.

Every random choice (order, views, augmentation) comes from the source's own named
generators, never from torch's global one, which other threads also draw from: the same seed
gives the same run, and a resumed run continues the same sequence.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..data.augment import augment_batch
from ..data.preprocess import Preprocessing
from ..data.store import mapped_floats, release_mapped
from ..models.prefix import split_frozen_prefix
from .device import DeviceSetup
from .distributed import SINGLE, World, agree, gather_rows, in_shares, sum_values
from .events import Control, Notice, StageProgress
from .inference import autocast, eval_inputs, predict_squares
from .loop import TrainingJob


def _generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _drop_ragged(n: int, batch_size: int) -> int:
    return n // batch_size if n > batch_size else 1


class FeatureBatches:
    """Batches of precomputed features (all views) with their targets, on the device."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor, val: torch.Tensor,
                 batch_size: int, seed: int, world: World = SINGLE):
        self.features, self.targets, self.val = features, targets, val
        self.world, self.batch_size = world, world.batch_size(batch_size)
        self.order = _generator(seed)
        share = len(world.shard(torch.arange(len(targets))))
        self.steps = max(1, -(-share // self.batch_size))  # every sample, every epoch

    def __len__(self) -> int:
        return self.steps

    def generators(self) -> dict[str, torch.Generator]:
        return {"order": self.order}

    def __iter__(self):
        order = torch.randperm(len(self.targets), generator=self.order)
        order = self.world.shard(order).to(self.features.device)
        for b in range(self.steps):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.features[idx], self.targets[idx]

    @torch.inference_mode()
    def validate(self, head: nn.Module, control: Control) -> np.ndarray:
        control.checkpoint()
        head.eval()
        return head(self.val).float().softmax(1).cpu().numpy()  # small: every process


class ImageBatches:
    """Training batches straight from the prepared uint8 squares.

    Indexing the array (no per-image Python), pinned host memory and non-blocking copies
    on a GPU, augmentation of the whole batch on the device with its own generator.
    """

    def __init__(self, images: np.ndarray, targets: np.ndarray, val_images: np.ndarray,
                 prep: Preprocessing, setup: DeviceSetup, preset: str, batch_size: int,
                 seed: int):
        self.images, self.targets, self.val_images = images, targets, val_images
        self.prep, self.setup, self.preset = prep, setup, preset
        self.world, self.batch_size = setup.world, setup.world.batch_size(batch_size)
        self.order = _generator(seed)
        # the same on every process (the same draws, on different images): one state to
        # save and resume
        self.augment = _generator(seed + 1, setup.device)
        share = len(self.world.shard(torch.arange(len(images))))
        self.steps = _drop_ragged(share, self.batch_size)

    def __len__(self) -> int:
        return self.steps

    def generators(self) -> dict[str, torch.Generator]:
        return {"order": self.order, "augment": self.augment}

    def __iter__(self):
        order = self.world.shard(torch.randperm(len(self.images), generator=self.order)).numpy()
        cuda = self.setup.device.type == "cuda"
        for b in range(self.steps):
            release_mapped()  # each row read maps up to a 2 MB folio: a batch's worth at most
            idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
            batch = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2)
            targets = torch.from_numpy(self.targets[idx])
            if cuda:
                batch, targets = batch.pin_memory(), targets.pin_memory()
            batch = batch.to(self.setup.device, non_blocking=True)
            x = augment_batch(batch, self.preset, self.prep, self.augment)
            yield x.contiguous(memory_format=torch.channels_last), targets.to(
                self.setup.device, non_blocking=True)

    def validate(self, model: nn.Module, control: Control) -> np.ndarray:
        def share(start: int, stop: int) -> torch.Tensor:
            return torch.from_numpy(predict_squares(
                model, self.val_images[start:stop], self.prep, self.setup, self.batch_size,
                control))

        return in_shares(self.world, len(self.val_images), share).numpy()


class CachedPrefixBatches:
    """Training batches of frozen-prefix activations: each image as is or mirrored."""

    def __init__(self, views: list[torch.Tensor], targets: np.ndarray, val: torch.Tensor,
                 setup: DeviceSetup, batch_size: int, seed: int):
        self.views, self.val, self.setup = views, val, setup
        self.targets = torch.from_numpy(targets)
        self.world, self.batch_size = setup.world, setup.world.batch_size(batch_size)
        self.order = _generator(seed)
        share = len(self.world.shard(torch.arange(len(targets))))
        self.steps = _drop_ragged(share, self.batch_size)

    def __len__(self) -> int:
        return self.steps

    def generators(self) -> dict[str, torch.Generator]:
        return {"order": self.order}

    def __iter__(self):
        n = len(self.targets)
        order = torch.randperm(n, generator=self.order)
        which = torch.randint(len(self.views), (n,), generator=self.order)
        order = self.world.shard(order)
        for b in range(self.steps):
            release_mapped()  # each row read maps up to a 2 MB folio: a batch's worth at most
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            view = which[idx]
            parts = [self.views[v][idx[view == v].to(self.views[v].device)]
                     for v in range(len(self.views))]
            labels = [self.targets[idx[view == v]] for v in range(len(self.views))]
            yield (torch.cat(parts).to(self.setup.device, non_blocking=True),
                   torch.cat(labels).to(self.setup.device, non_blocking=True))

    @torch.inference_mode()
    def validate(self, suffix: nn.Module, control: Control) -> np.ndarray:
        suffix.eval()

        def share(first: int, stop: int) -> torch.Tensor:
            out = []
            for start in range(first, stop, self.batch_size):
                control.checkpoint()
                x = self.val[start : min(stop, start + self.batch_size)].to(self.setup.device)
                with autocast(self.setup):
                    out.append(suffix(x).float().softmax(dim=1).cpu())
            return torch.cat(out)

        return in_shares(self.world, len(self.val), share).numpy()


def prefix_activations(job: TrainingJob, prefix: nn.Module, images: np.ndarray, flip: bool,
                       stage: str, budget_bytes: int) -> torch.Tensor | None:
    """Frozen-prefix outputs for every image (kept on the training device when it is a GPU).
    Past ``budget_bytes`` they go to a memory-mapped file on disk (float32, paged in by the
    operating system); None only when the disk lacks the room too. Under torchrun each
    process computes its share and all gather the whole."""
    world = job.setup.world
    if not world.many:
        return _activations(job, prefix, images, flip, stage, budget_bytes)
    start, stop = world.rows(len(images))
    mine = (_activations(job, prefix, images[start:stop], flip, stage, budget_bytes)
            if stop > start else None)
    if sum_values(world, [float(mine is None and stop > start)])[0]:
        return None  # one of the processes lacks the room: every one falls back alike
    shape, dtype = agree(world, (tuple(mine.shape[1:]), mine.dtype) if world.main else None)
    out = _allocate(job.setup, (len(images), *shape), dtype, budget_bytes)
    if sum_values(world, [float(out is None)])[0]:
        return None
    return gather_rows(world, mine, len(images), out)


def _allocate(setup: DeviceSetup, shape: tuple, dtype: torch.dtype,
              budget_bytes: int) -> torch.Tensor | None:
    """Room for activations: in memory (on the GPU when training there) within the budget,
    else a memory-mapped float32 file; None when the disk lacks the room too."""
    if math.prod(shape) * torch.finfo(dtype).bits // 8 > budget_bytes:
        mapped = mapped_floats(shape)
        return None if mapped is None else torch.from_numpy(mapped)
    store = setup.device if setup.device.type == "cuda" else torch.device("cpu")
    return torch.empty(shape, dtype=dtype, device=store)


@torch.inference_mode()
def _activations(job: TrainingJob, prefix: nn.Module, images: np.ndarray, flip: bool,
                 stage: str, budget_bytes: int) -> torch.Tensor | None:
    setup, batch_size = job.setup, job.config.batch_size
    prefix.eval()
    out: torch.Tensor | None = None
    for start, x in eval_inputs(images, job.prep, setup, batch_size, job.control, flip):
        with autocast(setup):
            y = prefix(x)
        if out is None:
            out = _allocate(setup, (len(images), *y.shape[1:]), setup.amp_dtype or torch.float32,
                            budget_bytes)
            if out is None:
                return None
        out[start : start + len(y)] = y.to(device=out.device, dtype=out.dtype)
        job.emit(StageProgress(stage, min(start + batch_size, len(images)), len(images)))
    return out


def cached_prefix(job: TrainingJob) -> tuple[nn.Module, CachedPrefixBatches] | None:
    """The suffix to train and its CachedPrefixBatches, or None to run the whole network."""
    config, data = job.config, job.data
    frozen = {name for name, p in job.model.named_parameters() if not p.requires_grad}
    split = split_frozen_prefix(job.model, frozen) if config.cache_frozen_prefix else None
    if split is None:
        return None
    prefix, suffix = split
    flips = [False, True] if config.augmentation != "none" else [False]
    share = config.prefix_cache_mb * 2**20 // (len(flips) + 1)
    views = []
    for flip in flips:
        stage = ("frozen layers on mirrored copies (augmentation), computed once" if flip
                 else "frozen layers, computed once for every epoch")
        acts = prefix_activations(job, prefix, data.train_images, flip, stage, share)
        if acts is None:
            job.emit(Notice("frozen-layer outputs exceed the memory budget and the disk's "
                            "free space; running the whole network each batch"))
            return None
        views.append(acts)
    val = prefix_activations(job, prefix, data.val_images, False,
                             "frozen layers on the validation images", share)
    if val is None:
        return None
    job.emit(Notice(f"frozen layers computed once ({len(prefix)} units); only the trainable "
                    "rest runs each epoch"))
    return suffix, CachedPrefixBatches(views, data.train_targets, val, job.setup,
                                       config.batch_size, config.seed)
