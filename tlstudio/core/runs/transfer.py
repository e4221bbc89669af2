"""Does pretraining help here? The negative-transfer check.

The same backbone, randomly initialised, trained in full on the same split with the same
augmentation and as many epochs as the pretrained run, is the baseline. Both are scored on
the same held-out images (the test part, else validation); the gain is their paired
difference in accuracy with a bootstrap interval (whole patients resampled when the dataset
has patient groups). Written as ``scratch/`` inside the run and as ``transfer`` in the run's
metrics.json.

On by default in the Recommended mode where it is cheap (``auto_compare``); any mode can ask
for it (``--compare-scratch``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..engine.config import MODE_DEFAULTS, TrainConfig
from ..engine.distributed import agree, current
from ..engine.events import EpochDone, Notice, StageProgress
from ..evaluation.uncertainty import Resampler, interval
from .history import read_predictions
from .record import CONFIG, METRICS

SCRATCH = "scratch"
SCRATCH_LR = 1e-3  # random weights need larger steps than pretrained ones
CHEAP = {"cuda": 2000, "mps": 2000, "cpu": 500}  # images: on by default below these


def auto_compare(config: TrainConfig, n_images: int, device_type: str) -> bool:
    """Whether the run compares with training from scratch."""
    if config.compare_scratch is not None:
        return bool(config.compare_scratch)
    return config.mode == "recommended" and n_images < CHEAP.get(device_type, 0)


def scratch_config(config: TrainConfig, epochs: int) -> TrainConfig:
    """The baseline: the same backbone from random weights, every layer training."""
    epochs = max(epochs, MODE_DEFAULTS["fine-tune"]["epochs"])
    return replace(config, pretrained=False, weights=None, init_from=None, mode="fine-tune",
                   freeze="full", frozen_paths=None, trainable_paths=None, epochs=epochs,
                   lr=SCRATCH_LR, patience=epochs, compare_scratch=False)


def transfer_block(run_dir: Path, scratch_dir: Path, groups: dict[str, str] | None,
                   seed: int = 0) -> dict:
    """``transfer`` for metrics.json from the two runs' predictions on the same images."""
    part = "test" if read_predictions(run_dir, "test") else "val"
    ours = {r.path: r.correct for r in read_predictions(run_dir, part)}
    theirs = {r.path: r.correct for r in read_predictions(scratch_dir, part)}
    paths = [p for p in ours if p in theirs]
    if not paths:
        raise ValueError("the pretrained and scratch runs share no evaluated image")
    a = np.array([ours[p] for p in paths], dtype=np.float64)
    b = np.array([theirs[p] for p in paths], dtype=np.float64)
    weights = Resampler.draw(len(paths), [groups.get(p, p) for p in paths] if groups else None,
                             seed=seed).weights
    totals = weights.sum(axis=1)
    gains = (weights @ (a - b)) / np.where(totals > 0, totals, np.nan)
    gain = float(a.mean() - b.mean())
    ci = interval(gains)
    return {"pretrained_accuracy": float(a.mean()), "scratch_accuracy": float(b.mean()),
            "gain": gain, "gain_ci": ci, "images": len(paths), "part": part,
            "verdict": verdict(gain, ci), "scratch_run": SCRATCH}


def verdict(gain: float, ci: list[float]) -> str:
    points = f"{gain * 100:+.1f} points (95 % CI {ci[0] * 100:+.1f} to {ci[1] * 100:+.1f})"
    if ci[0] > 0:
        return f"Pretraining gained {points} over training from scratch: transfer helps here."
    if ci[1] < 0:
        return (f"Warning: pretraining did worse than training from scratch, {points}. The "
                "pretrained features do not suit these images (negative transfer): try "
                "another backbone, adapt more layers, or train from scratch.")
    return (f"Pretraining made no clear difference: {points} against training from scratch. "
            "With these images it neither clearly helped nor hurt.")


def compare_with_scratch(config, index, split, out_dir, emit, control) -> dict | None:
    """Train the from-scratch baseline into ``out_dir/scratch`` (or finish or reuse one
    there) and compare; a failure or a stop only costs the comparison, never the run."""
    from .training import resume, train, user_message  # the baseline is a run like any other

    scratch_dir = out_dir / SCRATCH
    scratch = scratch_config(config, config.epochs if config.mode != "linear-probe" else 0)
    emit(Notice(f"training {config.backbone} from random weights for comparison "
                f"({scratch.epochs} epochs, every layer): does pretraining help here?"))

    def relay(event) -> None:  # the baseline's epochs are a stage of this run, not its own
        if isinstance(event, EpochDone):
            emit(StageProgress("training from scratch for comparison", event.epoch,
                               event.epochs))
        elif isinstance(event, StageProgress):
            emit(StageProgress(f"from scratch: {event.stage}", event.done, event.total))

    world = current()  # under torchrun every process trains the baseline; rank 0 compares
    try:
        step = agree(world, "reuse" if (scratch_dir / METRICS).is_file() else
                     "resume" if (scratch_dir / CONFIG).is_file() else "train")
        if step == "resume":  # "reuse": done before this process was killed
            resume(scratch_dir, [relay], control)
        elif step == "train":
            train(scratch, index, scratch_dir, [relay], control, split=split)
        if not world.main:
            return None
        if not (scratch_dir / METRICS).is_file() or _cancelled(scratch_dir):
            emit(Notice("the comparison with training from scratch was stopped; the run's "
                        "own results are complete"))
            return None
        groups = {item.key: item.group for item in index.items if item.group is not None}
        block = transfer_block(out_dir, scratch_dir, groups or None, config.seed)
    except Exception as exc:  # noqa: BLE001 - the run itself succeeded
        if world.many:  # the other processes may wait in a step this one left: ending the
            raise  # launch with an error ends them (the run's own files are written)
        emit(Notice(f"the comparison with training from scratch failed: {user_message(exc)}"))
        return None
    emit(Notice(block["verdict"]))
    return block


def _cancelled(run_dir: Path) -> bool:
    return bool(json.loads((run_dir / METRICS).read_text(encoding="utf-8"))
                .get("cancelled"))
