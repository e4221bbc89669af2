"""What the run's own training images handed each BatchNorm layer, kept with the run as
``source_statistics.safetensors`` (a few MB): `tlstudio adapt` aligns a new domain to it, so
a run moved to another site adapts there without its training images.

Measured at the end of training during the pass that fits the out-of-distribution warning
(the same images, no extra forward pass), as sums over ``PARTS`` random parts of them
(:class:`..evaluation.normalisation.MomentRecorder`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ..evaluation.normalisation import MomentRecorder, has_batch_norm
from .record import RunError, save_tensors_atomic

FILE = "source_statistics.safetensors"
PARTS = 10


def recorder(model, images: int, seed: int) -> MomentRecorder | None:
    """A recorder for a pass over ``images`` training images (None without BatchNorm);
    ``recorder.parts`` has one entry per image."""
    if not has_batch_norm(model) or images < 2:
        return None
    parts = np.random.default_rng(seed).permutation(images) % min(PARTS, images)
    return MomentRecorder(model, parts)


def save(run_dir: Path, sums: dict[str, tuple[torch.Tensor, torch.Tensor]],
         images: int) -> None:
    tensors = {"images": torch.tensor([images], dtype=torch.int64)}
    for name, (total, counts) in sums.items():
        tensors[f"{name}:sums"] = total.contiguous()
        tensors[f"{name}:counts"] = counts.contiguous()
    if len(tensors) > 1:
        save_tensors_atomic(Path(run_dir) / FILE, tensors)


def load(run_dir: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], int] | None:
    """The run's source statistics and how many images they hold, or None for runs made
    before they were kept."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
        names = {key.rsplit(":", 1)[0] for key in tensors if ":" in key}
        return ({name: (tensors[f"{name}:sums"].double(), tensors[f"{name}:counts"].double())
                 for name in names}, int(tensors["images"][0]))
    except Exception as exc:  # safetensors' own error types, or a missing half
        raise RunError(f"{path} is damaged ({exc}); delete it to measure the source domain "
                       "from the run's training images instead") from exc
