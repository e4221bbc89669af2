"""Building a TrainingSession for a mode: what trains, on which batches.

* Linear probe: a fine-tune whose trainable part is the head, over features computed once
  (plus a mirrored view when augmenting).
* Fine-tune (and the Recommended mode after its probe, ``recipe.py``, with smaller steps for
  earlier stages): the parameters the FreezePlan left trainable (already applied to the model).
  When the frozen part is a prefix of the network and its outputs fit the memory budget, it
  runs once per image and view; only the trainable rest runs each epoch. Otherwise every
  batch runs the whole network on freshly augmented images.

Both then share the optimizer, scheduler, loss and loop (``loop.py``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from .batches import FeatureBatches, ImageBatches, cached_prefix
from .callbacks import Callback
from .distributed import in_shares
from .inference import extract_features
from .loop import (
    TrainingJob,
    TrainingSession,
    class_weight_tensor,
    make_optimizer,
    make_scheduler,
)


class NothingToTrain(ValueError):
    """Every parameter is frozen."""


def _probe_source(job: TrainingJob):
    model, data, config, setup = job.model, job.data, job.config, job.setup

    def features(images, flip: bool, stage: str) -> torch.Tensor:
        def share(start: int, stop: int) -> torch.Tensor:  # under torchrun: this process's
            return extract_features(model, images[start:stop], job.prep, setup,
                                    config.batch_size, job.control, job.emit, flip=flip,
                                    stage=stage)

        return in_shares(setup.world, len(images), share)

    views = [False, True] if config.augmentation != "none" else [False]
    train = torch.cat([features(data.train_images, flip,
                                "features of mirrored copies (augmentation)" if flip
                                else "features of the training images, computed once")
                       for flip in views]).to(setup.device)
    targets = torch.from_numpy(np.tile(data.train_targets, len(views))).to(setup.device)
    val = features(data.val_images, False, "features of the validation images").to(setup.device)
    head = model.get_classifier()
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    batches = FeatureBatches(train, targets, val, config.batch_size, config.seed, setup.world)
    # the head trains on float32 features in full precision, whatever the device
    return head, batches, replace(setup, amp_dtype=None)


def _fine_tune_source(job: TrainingJob):
    job.model.to(memory_format=torch.channels_last)
    cached = cached_prefix(job)
    if cached is not None:
        return cached[0], cached[1], job.setup
    data, config = job.data, job.config
    return job.model, ImageBatches(data.train_images, data.train_targets, data.val_images,
                                   job.prep, job.setup, config.augmentation, config.batch_size,
                                   config.seed), job.setup


def _shared(net: nn.Module, setup) -> nn.Module:
    """Under torchrun, the trained part wrapped so every step averages the gradients of all
    processes (their parameters start equal: rank 0's are sent to the others)."""
    if not setup.world.many:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [setup.device.index] if setup.device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def build_session(job: TrainingJob, callbacks: list[Callback], evaluate_start: bool = False,
                  lr_factors: dict[int, float] | None = None) -> TrainingSession:
    """Everything the loop needs, ready to ``fit`` (or to ``load_state`` first);
    ``lr_factors`` scale the learning rate per parameter (by id)."""
    model, config, setup = job.model, job.config, job.setup
    model.to(setup.device)
    if config.mode != "linear-probe" and not any(p.requires_grad for p in model.parameters()):
        raise NothingToTrain("every layer is frozen: unfreeze at least the head to fine-tune")
    source = _probe_source if config.mode == "linear-probe" else _fine_tune_source
    net, batches, loop_setup = source(job)
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = (class_weight_tensor(job.data.train_targets, job.data.num_classes).to(setup.device)
               if config.class_weights else None)
    optimizer = make_optimizer(trainable, config, lr_factors)
    scaler = (torch.amp.GradScaler("cuda") if loop_setup.amp_dtype == torch.float16 else None)
    return TrainingSession(
        model=model, net=net, train_net=_shared(net, setup), batches=batches,
        val_targets=job.data.val_targets,
        setup=loop_setup, control=job.control, epochs=config.epochs, optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config, len(batches)), scaler=scaler,
        loss_fn=nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing),
        callbacks=callbacks, evaluate_start=evaluate_start,
    )
