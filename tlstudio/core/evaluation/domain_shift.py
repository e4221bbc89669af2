"""How far the user's images are from what a backbone learned on, stage by stage.

Every BatchNorm layer remembers the mean and variance of its inputs over the pretraining
images (its running statistics). Running the user's images through the frozen network and
comparing what each BatchNorm now sees with what it remembers gives a shift per layer: the
distance between the two Gaussians per channel (symmetric KL divergence), averaged over
channels and over the BatchNorm layers of a stage. A stage whose inputs moved far from the
pretraining statistics is one worth adapting: low-level changes (noise, contrast, another
modality) move the early stages, new concepts the late ones (Lee et al. 2022, surgical
fine-tuning). Backbones without BatchNorm (ViT, ConvNeXt's LayerNorm) have no remembered
statistics and get no gauge.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..data.preprocess import Preprocessing
from ..engine.device import DeviceSetup
from ..engine.recipe import affordable
from ..models.layers import stages
from .normalisation import batch_norms, has_batch_norm, input_moments

EPS = 1e-5


def _symmetric_kl(mean: torch.Tensor, var: torch.Tensor, ref_mean: torch.Tensor,
                  ref_var: torch.Tensor) -> float:
    var, ref_var = var.clamp_min(EPS), ref_var.clamp_min(EPS)
    diff = (mean - ref_mean) ** 2
    kl = 0.5 * (var / ref_var + ref_var / var + diff / ref_var + diff / var) - 1.0
    return float(kl.median())  # robust to a few channels the images barely use


@torch.inference_mode()
def stage_shift(model: nn.Module, images: np.ndarray, prep: Preprocessing, setup: DeviceSetup,
                batch_size: int = 32) -> list[dict]:
    """``[{"stage", "shift", "layers"}]`` input to output for prepared squares ``images``;
    empty when the backbone has no BatchNorm."""
    if not has_batch_norm(model) or not stages(model):
        return []
    return shift_by_stage(model, input_moments(model, images, prep, setup, batch_size))


def shift_by_stage(model: nn.Module, moments: dict[str, torch.Tensor]) -> list[dict]:
    """The gauge from already measured layer inputs (``{name: [mean, variance]}``, as
    :func:`..normalisation.input_moments` gives): each layer's distance from the statistics
    it holds, averaged per stage."""
    paths = stages(model)
    per_layer = {name: _symmetric_kl(moments[name][0], moments[name][1],
                                     m.running_mean.float().cpu(), m.running_var.float().cpu())
                 for name, m in batch_norms(model) if name in moments}
    out = []
    for i, path in enumerate(paths):
        inside = [v for name, v in per_layer.items()
                  if name == path or name.startswith(path + ".")]
        if i == 0:  # the stem (before the first stage) counts with the first stage
            inside += [v for name, v in per_layer.items()
                       if not any(name.startswith(p + ".") or name == p for p in paths)
                       and _before_stages(model, name)]
        if inside:
            out.append({"stage": path, "shift": float(np.mean(inside)), "layers": len(inside)})
    return out


def _before_stages(model: nn.Module, name: str) -> bool:
    """A BatchNorm outside every stage that runs before them (the stem), not after (head)."""
    order = [n for n, _ in model.named_modules()]
    first_stage = stages(model)[0]
    return order.index(name) < order.index(first_stage)


def recommend_unfreeze(shifts: list[dict]) -> list[str]:
    """Stages to adapt: the last stage always (new classes need new high-level features),
    plus every stage whose shift stands out (above the mean of the stages by more than half
    their spread)."""
    if not shifts:
        return []
    values = np.array([s["shift"] for s in shifts])
    bar = values.mean() + 0.5 * values.std()
    chosen = {s["stage"] for s in shifts if s["shift"] > bar}
    chosen.add(shifts[-1]["stage"])
    return [s["stage"] for s in shifts if s["stage"] in chosen]


def far_from_pretraining(wanted: list[str], stage_paths: list[str]) -> bool:
    """An early stage shifted (low-level statistics: another modality, contrast, scale):
    the features themselves must move, which a head probed first would hold back, so the
    Recommended mode fine-tunes from a fresh head (BENCHMARKS.md: Fashion-MNIST)."""
    return any(s in stage_paths[: len(stage_paths) // 2] for s in wanted)


def stages_to_adapt(shifts: list[dict], stage_paths: list[str], device_type: str
                    ) -> tuple[list[str], list[str]]:
    """(the stages the gauge asks for, those this device can afford to adapt): the last
    stage when nothing was measured (no BatchNorm)."""
    wanted = recommend_unfreeze(shifts) or stage_paths[-1:]
    return wanted, affordable(wanted, stage_paths, device_type)
