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


def _in_scope(name: str, within: tuple[str, ...] | None) -> bool:
    return within is None or any(name == p or name.startswith(p + ".") for p in within)


class MomentRecorder:
    """While open, every forward pass of ``model`` adds what each BatchNorm layer receives
    to per-part sums (see :func:`moment_sums`): the images arrive in order and image ``i``
    counts in part ``parts[i]``. Lets a pass made for another purpose (the OOD fit at the
    end of training) measure the source domain at no extra cost."""

    def __init__(self, model: nn.Module, parts: np.ndarray):
        self.model, self.parts = model, np.asarray(parts, dtype=np.int64)
        self.k = int(self.parts.max()) + 1 if len(self.parts) else 1
        self.sums: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._seen: dict[str, int] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def record(_module, args):
            x = args[0].detach().float()
            start = self._seen.get(name, 0)
            index = self.parts[start : start + len(x)]
            self._seen[name] = start + len(x)
            if len(index) < len(x):  # more images than parts were drawn for: not counted
                x = x[: len(index)]
            if len(index) == 0:
                return
            dims = list(range(2, x.dim()))
            per_image = torch.stack([x.mean(dim=dims), (x * x).mean(dim=dims)], 1) if dims \
                else torch.stack([x, x * x], 1)
            size = float(np.prod(x.shape[2:])) if dims else 1.0
            total = self.sums.setdefault(name, (
                torch.zeros(self.k, 2, x.shape[1], dtype=torch.float64),
                torch.zeros(self.k, dtype=torch.float64)))
            rows = torch.from_numpy(index)
            total[0].index_add_(0, rows, per_image.cpu().double() * size)
            total[1].index_add_(0, rows, torch.full((len(rows),), size, dtype=torch.float64))
        return record

    def __enter__(self) -> MomentRecorder:
        self._handles = [m.register_forward_pre_hook(self._hook(name))
                         for name, m in batch_norms(self.model)]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


@torch.no_grad()
def moment_sums(model: nn.Module, images: np.ndarray, prep: Preprocessing,
                setup: DeviceSetup, batch_size: int = 32, parts: np.ndarray | None = None,
                ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """What every BatchNorm layer receives from ``images`` under the model as it stands
    (evaluation mode), as sums per part of the images: ``{name: (sums, counts)}``, sums
    ``parts x 2 x C`` (first and second moment per channel, over images and positions),
    counts ``parts``. ``parts``: the part of each image (default: one part); random parts
    let :func:`sampling_noise` tell a change of domain from the luck of a sample."""
    parts = np.zeros(len(images), np.int64) if parts is None else np.asarray(parts)
    was_training = model.training
    model.eval()
    try:
        with MomentRecorder(model, parts) as recorder:
            for _, x in eval_inputs(images, prep, setup, batch_size):
                model(x)
    finally:
        model.train(was_training)
    return recorder.sums


def combine(sums: dict[str, tuple[torch.Tensor, torch.Tensor]],
            chosen: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Per layer ``[mean, variance]`` (2 x C, float32) over the ``chosen`` parts (all)."""
    out = {}
    for name, (total, counts) in sums.items():
        rows = slice(None) if chosen is None else torch.from_numpy(np.asarray(chosen))
        mean, square = total[rows].sum(0) / counts[rows].sum()
        out[name] = torch.stack([mean, (square - mean * mean).clamp_min(0.0)]).float()
    return out


def input_moments(model: nn.Module, images: np.ndarray, prep: Preprocessing,
                  setup: DeviceSetup, batch_size: int = 32) -> dict[str, torch.Tensor]:
    """Per BatchNorm layer the ``[mean, variance]`` per channel of what ``images`` hand it:
    the source half of :func:`align`."""
    return combine(moment_sums(model, images, prep, setup, batch_size))


def distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """How far two sets of layer inputs lie apart: per layer the symmetric KL divergence of
    the per-channel Gaussians (median over channels), averaged over the layers."""
    eps = 1e-5
    values = []
    for name in a.keys() & b.keys():
        (m1, v1), (m2, v2) = a[name].double(), b[name].double()
        v1, v2 = v1.clamp_min(eps), v2.clamp_min(eps)
        diff = (m1 - m2) ** 2
        values.append(float((0.5 * (v1 / v2 + v2 / v1 + diff / v1 + diff / v2) - 1.0).median()))
    return float(np.mean(values)) if values else float("nan")


def sampling_noise(sums: dict[str, tuple[torch.Tensor, torch.Tensor]], share: float,
                   draws: int = 8, seed: int = 0) -> float:
    """How far a sample of ``share`` of the source's images lies from the rest of it by
    luck alone: the largest :func:`distance` over random draws of its parts (at most half).
    A sample smaller than one part is scaled from a one-part sample: for small differences
    the distance falls as one over the sample's size."""
    parts = len(next(iter(sums.values()))[1]) if sums else 0
    if parts < 2 or share <= 0:
        return float("nan")
    rng = np.random.default_rng(seed)
    taken_count = min(max(1, int(round(parts * min(share, 0.5)))), parts - 1)
    largest = 0.0
    for _ in range(draws):
        order = rng.permutation(parts)
        taken, rest = order[:taken_count], order[taken_count:]
        largest = max(largest, distance(combine(sums, taken), combine(sums, rest)))
    return largest * max(1.0, (taken_count / parts) / share)


def _aligned(mean_t: torch.Tensor, var_t: torch.Tensor, source: torch.Tensor,
             stored_mean: torch.Tensor, stored_var: torch.Tensor, eps: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """The statistics that turn inputs of mean ``mean_t`` and variance ``var_t`` into the
    outputs the source images gave under the stored statistics: same mean, same spread."""
    sd_stored = (stored_var + eps).sqrt()
    sd_source = (source[1].to(mean_t) + eps).sqrt()
    sd = (var_t + eps).sqrt() * sd_stored / sd_source
    mean = mean_t - sd * (source[0].to(mean_t) - stored_mean) / sd_stored
    return mean, (sd * sd - eps).clamp_min(0.0)


@torch.no_grad()
def align(model: nn.Module, source: dict[str, torch.Tensor], images: np.ndarray,
          prep: Preprocessing, setup: DeviceSetup, batch_size: int = 32,
          within: tuple[str, ...] | None = None) -> int:
    """Adapt every BatchNorm layer to the domain of ``images`` (no labels needed) so that it
    hands the layers after it what the source images handed them: each layer normalises
    the new domain's inputs by their own mean and spread, then restores the mean and spread
    the source images had at that point (``source``: :func:`input_moments` of the training
    images). The head and every trained layer then see features of the kind they were
    trained on, whatever statistics the layer held (ImageNet's for a frozen layer, the
    source's for a trained one); on images of the source domain itself nothing changes.

    One pass, input to output: each batch is aligned with its own moments, so later layers
    see already-aligned inputs; each layer keeps the average over the batches. Weights stay
    untouched; on failure the statistics are put back. Returns the number of layers changed.
    """
    norms = [(name, m) for name, m in batch_norms(model)
             if _in_scope(name, within) and name in source]
    if not norms or len(images) == 0:
        return 0
    kept = statistics(model)
    stored = {name: (m.running_mean.clone(), m.running_var.clone()) for name, m in norms}
    sums: dict[str, list] = {}

    def hook(name, module):
        def set_stats(_module, args):
            x = args[0].double()
            dims = [0, *range(2, x.dim())]
            count = x.numel() / x.shape[1]
            mean, square = x.mean(dim=dims), (x * x).mean(dim=dims)
            total = sums.setdefault(name, [torch.zeros(2, x.shape[1], dtype=torch.float64,
                                                       device=x.device), 0.0])
            total[0] += torch.stack([mean, square]) * count
            total[1] += count
            m_, v_ = _aligned(mean, (square - mean * mean).clamp_min(0.0), source[name],
                              *stored[name], module.eps)
            module.running_mean.copy_(m_.to(module.running_mean.dtype))
            module.running_var.copy_(v_.to(module.running_var.dtype))
        return set_stats

    was_training = {m: m.training for m in model.modules()}
    model.eval()
    handles = [m.register_forward_pre_hook(hook(name, m)) for name, m in norms]
    try:
        for _, x in eval_inputs(images, prep, setup, batch_size):
            model(x)
        for name, m in norms:
            total, count = sums[name]
            mean, square = total / count
            m_, v_ = _aligned(mean, (square - mean * mean).clamp_min(0.0), source[name],
                              *stored[name], m.eps)
            m.running_mean.copy_(m_.to(m.running_mean.dtype))
            m.running_var.copy_(v_.to(m.running_var.dtype))
    except BaseException:
        load_statistics(model, kept)
        raise
    finally:
        for h in handles:
            h.remove()
        for m, training in was_training.items():
            m.train(training)
    return len(norms)
