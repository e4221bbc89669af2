"""The choices of a Recommended run, made when it starts: which stages to adapt (from the
stage-shift gauge on a few training images, within what this device affords), whether a
short linear probe comes first (not when the gauge finds early stages shifted: a far
domain, whose features must move) and the fine-tune's epochs and steps for this many images
(``engine.recipe``). The concrete choices are what config.json records, so a resumed run
does not choose again.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..engine.config import TrainConfig
from ..engine.events import Notice, StageProgress
from ..engine.recipe import fill
from ..evaluation.domain_shift import far_from_pretraining, stage_shift, stages_to_adapt
from ..models.layers import after_stages, stages

SHIFT_IMAGES = 128  # training images the stage-shift gauge looks at to choose layers


def choose(config, model, prepared, prep, setup, emit) -> TrainConfig:
    """Fill in a Recommended run: fine-tuning epochs and steps for this many images on this
    device, and (unless the user chose layers) the stages the stage-shift gauge says to
    adapt, with what follows the last of them (conv head, classifier)."""
    trainable, probe = None, config.probe_first
    if config.frozen_paths is None and config.trainable_paths is None and config.freeze is None:
        images = prepared.data.train_images
        pick = np.random.default_rng(config.seed).permutation(len(images))[:SHIFT_IMAGES]
        emit(StageProgress("choosing layers", 0, 1))
        shifts = stage_shift(model, images[np.sort(pick)], prep, setup, config.batch_size)
        emit(StageProgress("choosing layers", 1, 1))
        paths = stages(model)
        wanted, chosen = stages_to_adapt(shifts, paths, setup.device.type)
        trainable = chosen + after_stages(model)
        far = far_from_pretraining(wanted, paths)
        if probe is None:
            probe = not far
        layers = ", ".join(chosen)
        emit(Notice(f"recommended: a linear probe first, then fine-tuning {layers} with "
                    "smaller steps for earlier layers" if probe else
                    f"recommended: fine-tuning {layers} from a fresh head, with smaller steps "
                    "for earlier layers" + (" (your images shift early stages from their "
                                            "pretraining, so the features must move; a head "
                                            "probed first would hold them back)" if far else "")))
        skipped = [s for s in wanted if s not in chosen]
        if skipped:
            emit(Notice(f"your images also shift {', '.join(skipped)} from its pretraining; "
                        "adapting such early layers is left to a GPU (on this CPU it would "
                        "run the whole network every batch). To adapt them anyway, choose "
                        "them in Fine-tune (--mode fine-tune --trainable ...)"))
    out = fill(config, len(prepared.data.train_targets), setup.device.type, trainable)
    return replace(out, probe_first=True if probe is None else probe)

