"""The statistics a network's BatchNorm layers keep, re-estimated on other images: the basis of
adapting a trained model to a new scanner or site (issue 19: domain-specific BatchNorm, AdaBN,
Li et al. 2016), and of the stage-shift gauge's reference.

Every BatchNorm layer normalises its input with a running mean and variance remembered from
training. On images of another domain those inputs move; replacing the remembered statistics
by the new domain's own (no labels needed) brings the normalised features back where the
layers after it expect them. :func:`reestimate` does that in one pass, leaving every weight
untouched.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.preprocess import Preprocessing
from ..engine.device import DeviceSetup
from ..engine.inference import eval_inputs

_BN = nn.modules.batchnorm._BatchNorm


def batch_norms(model: nn.Module) -> list[tuple[str, _BN]]:
    """The BatchNorm layers that keep running statistics (name, module), input to output."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, _BN) and m.track_running_stats and m.running_mean is not None]


def has_batch_norm(model: nn.Module) -> bool:
    """False for backbones that normalise each image by itself (ViT and ConvNeXt use
    LayerNorm): they keep no statistics of a domain to re-estimate."""
    return bool(batch_norms(model))


def statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every running mean and variance (to restore, compare or save)."""
    out = {}
    for name, m in batch_norms(model):
        out[f"{name}.running_mean"] = m.running_mean.detach().clone()
        out[f"{name}.running_var"] = m.running_var.detach().clone()
    return out


def load_statistics(model: nn.Module, stats: dict[str, torch.Tensor]) -> None:
    for name, m in batch_norms(model):
        m.running_mean.copy_(stats[f"{name}.running_mean"])
        m.running_var.copy_(stats[f"{name}.running_var"])


@torch.no_grad()
def reestimate(model: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
               batch_size: int = 32, within: tuple[str, ...] | None = None) -> int:
    """Replace every BatchNorm layer's running statistics by those of ``images`` (prepared
    squares, N x H x W x 3 uint8): one pass in which each batch is normalised by its own
    statistics, as in training, and each layer keeps the plain average over the batches
    (PyTorch's cumulative ``momentum=None``; a last batch of one image is left out). Weights,
    biases and the model's train/eval state are left as they were. ``within``: only the
    layers under these module paths (e.g. the early stages the shift gauge flags); the others
    keep their statistics and normalise with them. Returns the number of layers changed."""
    norms = [(name, m) for name, m in batch_norms(model)
             if within is None or any(name == p or name.startswith(p + ".") for p in within)]
    if not norms or len(images) == 0:
        return 0
    was_training = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for _, m in norms}
    kept = statistics(model)  # put back if the pass fails: never a half-adapted model
    model.eval()
    for _, m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: every batch counts by its size
        m.train()
    try:
        for start, x in eval_inputs(images, prep, setup, batch_size):
            if len(x) < 2 and start > 0:
                break  # a batch of one has no variance to add
            model(x)
    except BaseException:
        load_statistics(model, kept)
        raise
    finally:
        for m, training in was_training.items():
            m.train(training)
        for m, momentum in momenta.items():
            m.momentum = momentum
    return len(norms)
