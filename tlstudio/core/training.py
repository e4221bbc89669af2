"""``train``: the one call behind ``tlstudio train`` and the GUI's Start button.

Folder or CSV in, run folder out: scan, split, build the backbone, decode images once,
fit (linear probe or fine-tune), evaluate the best checkpoint, write the run record.
Every step reports through the same event stream; a Stop keeps what was already learned.
"""

from __future__ import annotations

import datetime as _dt
import random
import traceback
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from .. import __version__
from ..errors import UserError
from .backbones import build_model, get_spec
from .cache import ImageCache, decode_images
from .config import TrainConfig
from .dataset import DatasetIndex, scan
from .device import pick_device
from .events import Cancelled, Control, Event, Failed, Finished, Listener, Notice, StageProgress
from .inference import predict_squares
from .layers import FreezePlan, apply_freeze_plan, preset_plan
from .metrics import evaluate
from .run import CONFIG, WEIGHTS, RunRecord, load_run
from .split import make_split
from .trainer import TrainingData, fit_fine_tune, fit_linear_probe


class TrainingError(UserError):
    """Training cannot start or continue; the message is for the user."""


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    index: DatasetIndex | None
    cancelled: bool = False
    stopped_early: bool = False


def _fan_out(listeners: Iterable[Listener]):
    listeners = list(listeners)

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    return emit


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    config: TrainConfig,
    dataset: DatasetIndex | str | Path,
    out_dir: str | Path,
    listeners: Iterable[Listener] = (),
    control: Control | None = None,
) -> TrainResult:
    """Train and write a run folder. Emits ``Failed`` and raises on errors."""
    emit = _fan_out(listeners)
    try:
        return _train(config.resolved(), dataset, Path(out_dir), emit, control or Control())
    except Cancelled:  # stopped before the first epoch: nothing learned, nothing saved
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(Path(out_dir), {}, None, cancelled=True)
    except Exception as exc:
        emit(Failed(_user_message(exc)))
        raise


def _user_message(exc: Exception) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return ("the GPU ran out of memory: lower the batch size, freeze more layers or pick "
                "a smaller backbone")
    if isinstance(exc, (UserError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"


def _check_out_dir(out_dir: Path, index: DatasetIndex) -> None:
    if (out_dir / CONFIG).exists():
        raise TrainingError(f"'{out_dir}' already holds a run; choose a new output folder")
    if index.source == "folder":
        root = index.root.resolve()
        target = out_dir.resolve()
        if target == root or root in target.parents:
            raise TrainingError(
                f"the output folder '{out_dir}' is inside the dataset folder; tlstudio never "
                "writes into your data. Choose an output folder elsewhere."
            )


def _train(config: TrainConfig, dataset, out_dir: Path, emit, control: Control) -> TrainResult:
    seed_everything(config.seed)
    spec = get_spec(config.backbone)  # an unknown name fails before any slow work
    if isinstance(dataset, DatasetIndex):
        index = dataset
    else:
        index = scan(dataset, progress=lambda d, t: emit(StageProgress("scanning", d, t)),
                     workers=config.workers)
    _check_out_dir(out_dir, index)
    skipped = [p for p in index.problems if p.skipped and p.path is not None]
    if skipped:
        emit(Notice(f"{len(skipped)} file(s) skipped: " + "; ".join(map(str, skipped[:5]))
                    + (" ..." if len(skipped) > 5 else "")))
    split = make_split(index, config.val_fraction, config.test_fraction, config.seed)

    prep = spec.preprocessing()
    emit(StageProgress("loading backbone", 0, 1))
    model = build_model(spec, len(index.classes), weights=config.weights,
                        pretrained=config.pretrained)
    if config.init_from:
        _start_from_run(model, config.init_from, spec.name, index.classes)
    emit(StageProgress("loading backbone", 1, 1))

    parts = {"train": split.train, "val": split.val, "test": split.test}
    order = [pos for name in ("train", "val", "test") for pos in parts[name]]
    cache = ImageCache(config.cache_dir) if config.use_cache else None
    squares, failures = decode_images(
        [index.items[p].path for p in order], prep, workers=config.workers,
        progress=lambda d, t: emit(StageProgress("decoding images", d, t)),
        check=control.checkpoint, cache=cache,
    )
    if cache is not None and cache.stats.hits:
        emit(Notice(f"{cache.stats.hits} of {len(order)} images read from the cache"))
    for k, reason in failures.items():
        emit(Notice(f"{index.items[order[k]].path}: {reason}; skipped"))
    where = {pos: k for k, pos in enumerate(order)}
    targets = index.targets()

    def part(all_squares: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
        keep = [p for p in parts[name] if where[p] not in failures]
        rows = [where[p] for p in keep]
        return all_squares[rows], np.array([targets[p] for p in keep], dtype=np.int64), keep

    train_x, train_y, train_pos = part(squares, "train")
    val_x, val_y, val_pos = part(squares, "val")
    test_x, test_y, test_pos = part(squares, "test")
    del squares  # the parts hold their own copies
    if len(train_y) == 0 or len(val_y) == 0:
        raise TrainingError("no readable images left for training or validation")
    data = TrainingData(train_x, train_y, val_x, val_y, len(index.classes))

    if config.mode == "linear-probe":
        plan = preset_plan(model, "head")
    elif config.frozen_paths is not None:
        plan = FreezePlan(model, config.frozen_paths)
    else:
        plan = preset_plan(model, config.freeze)
    apply_freeze_plan(model, plan)
    setup = pick_device(config.device, config.amp)
    if setup.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick kernels
    emit(Notice(f"training on {setup.description}; {plan.summary()}"))

    record = RunRecord(out_dir)
    record.write_json(CONFIG, {
        "tlstudio_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "backbone": spec.as_dict(),
        "classes": index.classes,
        "preprocessing": prep.as_dict(),
        "train": config.as_dict(),
        "frozen_paths": plan.frozen_paths(model),
        "trainable_parameters": plan.trainable(),
        "total_parameters": plan.total(),
        "device": setup.description,
        "dataset": {
            "root": str(index.root), "source": index.source, "counts": index.counts(),
            "groups": len({item.group for item in index.items if item.group is not None}),
            "split_sizes": {"train": len(train_y), "val": len(val_y), "test": len(test_y)},
            "problems": [str(p) for p in index.problems],
        },
    })
    record.write_json("split.json", {
        name: [str(index.items[p].path) for p in pos]
        for name, pos in (("train", train_pos), ("val", val_pos), ("test", test_pos))
    })

    fit_args = (model, data, prep, config, setup, record, emit, control)
    if config.mode == "linear-probe":
        fit = fit_linear_probe(*fit_args)
        if fit.epochs_run:
            record.save_weights(model.state_dict())
    else:
        fit = fit_fine_tune(*fit_args, evaluate_start=bool(config.init_from))
        if (out_dir / WEIGHTS).exists():
            model.load_state_dict(load_file(str(out_dir / WEIGHTS)))
    if not (out_dir / WEIGHTS).exists():
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(out_dir, {}, index, cancelled=True)

    probs = predict_squares(model, val_x, prep, setup, config.batch_size)
    metrics = evaluate(probs, val_y, index.classes)
    result = {
        "val_accuracy": metrics["accuracy"], "val_loss": metrics["loss"], **metrics,
        "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early, "cancelled": fit.cancelled,
    }
    if len(test_y):
        test_metrics = evaluate(predict_squares(model, test_x, prep, setup, config.batch_size),
                                test_y, index.classes)
        result["test"] = test_metrics
        result["test_accuracy"] = test_metrics["accuracy"]
    record.write_json("metrics.json", result)
    record.write_predictions([str(index.items[p].path) for p in val_pos], val_y, probs,
                             index.classes)
    emit(Finished(str(out_dir), result, stopped_early=fit.stopped_early,
                  cancelled=fit.cancelled))
    return TrainResult(out_dir, result, index, cancelled=fit.cancelled,
                       stopped_early=fit.stopped_early)


def _start_from_run(model, run_dir: str, backbone: str, classes: list[str]) -> None:
    previous = load_run(run_dir)
    if previous.config["backbone"]["name"] != backbone:
        raise TrainingError(
            f"'{run_dir}' was trained with {previous.config['backbone']['name']}, not {backbone}"
        )
    if previous.classes != classes:
        raise TrainingError(f"'{run_dir}' has classes {previous.classes}, this dataset {classes}")
    model.load_state_dict(previous.model.state_dict())  # the previous head included
