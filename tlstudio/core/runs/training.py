"""``train`` and ``resume``: the calls behind ``tlstudio train`` and the studio's Start/Resume.

Folder or CSV in, run folder out: scan (decoding each image once, into the cache), split
(or take the split given), build the backbone, write config.json and split.json, decode,
fit with the one loop (a Recommended run first makes its choices, ``recommended``, and
probes), evaluate the best checkpoint on the path that chose it and write the results
(``results``), then, where asked, compare with training from scratch (``transfer``). The
folder is locked while a process trains into it; a run stopped or killed at any point can be
continued with :func:`resume` from its own files.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from ... import __version__
from ...errors import UserError
from ..data.dataset import DatasetIndex, scan
from ..data.split import Split, make_split, split_from_paths
from ..engine.callbacks import BestScore, EarlyStopping, ProgressEvents
from ..engine.config import TrainConfig
from ..engine.device import pick_device
from ..engine.distributed import (
    SINGLE,
    World,
    agree,
    current,
    join,
    local_first,
    shared_control,
    sum_values,
)
from ..engine.events import (
    Cancelled,
    Control,
    Event,
    Failed,
    Finished,
    Listener,
    Notice,
    StageProgress,
)
from ..engine.loop import FitResult, TrainingJob, model_weights
from ..engine.modes import build_session
from ..engine.prepare import image_cache, prepare_data
from ..engine.recipe import probe_first, stage_factors
from ..evaluation.operating_point import ThresholdError, parse_rule
from ..logs import report_bug
from ..models.backbones import build_model, get_spec, init_head
from ..models.layers import (
    FreezePlan,
    apply_freeze_plan,
    known_paths,
    preset_plan,
    stages,
)
from ..models.weights import read_state_dict
from ..words import count
from . import recommended
from .history import check_pixel_rule, load_run, read_config, summarize
from .lock import RunBusy, RunLock
from .record import CONFIG, SPLIT, WEIGHTS, RunRecord
from .recorder import History, RunRecorder
from .results import write_results
from .transfer import auto_compare, compare_with_scratch

log = logging.getLogger(__name__)


class TrainingError(UserError):
    """Training cannot start or continue; the message is for the user."""


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    index: DatasetIndex | None
    cancelled: bool = False
    stopped_early: bool = False
    epochs_run: int = 0
    # one of the other processes of a torchrun launch: rank 0 writes and reports the run
    secondary: bool = False


def _fan_out(listeners: Iterable[Listener], world: World = SINGLE):
    """One call to every listener; none under torchrun but in rank 0 (one printed log)."""
    listeners = list(listeners) if world.main else []

    def emit(event: Event) -> None:
        for listener in listeners:
            listener(event)

    return emit


def preprocessing_for(config: TrainConfig):
    """The backbone's preprocessing with the run's pixel choices (window, frames)."""
    return get_spec(config.backbone).preprocessing().with_window(config.window, config.frames)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def user_message(exc: BaseException) -> str:
    if isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower():
        return ("the GPU ran out of memory: lower the batch size, freeze more layers or pick "
                "a smaller backbone")
    if isinstance(exc, (UserError, ValueError)):
        return str(exc)
    return report_bug(log, exc, "training")


def _guarded(work, out_dir: Path, emit) -> TrainResult:
    try:
        return work()
    except Cancelled:  # stopped while scanning: nothing learned, nothing to keep
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(out_dir, {}, None, cancelled=True)
    except Exception as exc:
        emit(Failed(user_message(exc)))
        raise


def train(
    config: TrainConfig,
    dataset: DatasetIndex | str | Path,
    out_dir: str | Path,
    listeners: Iterable[Listener] = (),
    control: Control | None = None,
    split: Split | None = None,
) -> TrainResult:
    """Train into a new run folder. ``split`` (positions into the dataset's items) replaces
    the seeded split. Emits ``Failed`` and raises on errors. Under torchrun every process
    calls it alike; only rank 0 writes the folder."""
    world = join(config.device)
    emit, control, out_dir = _fan_out(listeners, world), control or Control(), Path(out_dir)

    def work() -> TrainResult:
        resolved = config.resolved()
        get_spec(resolved.backbone)  # an unknown name fails before any slow work
        pick_device(resolved.device, resolved.amp)
        if not world.main:  # checks the folder rank 0 is about to create: rank 0's alone
            _check_paths(resolved)
            return _train_new(resolved, dataset, out_dir, emit, control, split)
        _check_new_out_dir(out_dir, dataset)
        _check_paths(resolved)
        try:
            parse_rule(resolved.threshold)
        except ThresholdError as exc:
            raise TrainingError(f"--threshold: {exc}") from None
        if resolved.weights:
            read_state_dict(resolved.weights)  # missing, damaged or NaN: said before scanning
        created = not out_dir.exists()
        with RunLock(out_dir):
            try:
                if (out_dir / CONFIG).exists():  # checked again under the lock: two racing
                    raise TrainingError(_holds_a_run(out_dir))
                return _train_new(resolved, dataset, out_dir, emit, control, split)
            finally:
                if created and not (out_dir / CONFIG).exists():
                    shutil.rmtree(out_dir, ignore_errors=True)  # nothing worth keeping

    return _guarded(work, out_dir, emit)


def resume(run_dir: str | Path, listeners: Iterable[Listener] = (),
           control: Control | None = None, device: str | None = None) -> TrainResult:
    """Continue a stopped, interrupted or killed run from its own files, after its last
    completed epoch; it ends with the files of an uninterrupted run. Under torchrun every
    process reads the run's files (on a folder they all see); only rank 0 writes."""
    run_dir = Path(run_dir)
    world = join(device or _saved_device(run_dir))
    emit, control = _fan_out(listeners, world), control or Control()

    def work() -> TrainResult:
        saved = read_config(run_dir)
        if world.main:
            status = summarize(run_dir).status
            if status == "running":
                RunLock(run_dir).acquire()  # raises RunBusy, naming the process
            if status == "finished":
                raise TrainingError(f"'{run_dir}' already finished; there is nothing to "
                                    "resume")
        with RunLock(run_dir) if world.main else contextlib.nullcontext():
            config = TrainConfig.from_dict(saved["train"])
            if device is not None:
                config.device = device
            config = config.resolved()
            pick_device(config.device, config.amp)
            prep = preprocessing_for(config)
            check_pixel_rule(saved, run_dir)
            index = _scan(saved["dataset"]["root"], config, prep, emit)
            if index.classes != saved["classes"]:
                raise TrainingError(f"the dataset's classes are {index.classes} now; the run "
                                    f"was trained on {saved['classes']}")
            parts = json.loads((run_dir / SPLIT).read_text(encoding="utf-8"))
            split = split_from_paths(index, parts)
            state = RunRecord(run_dir).load_state()
            if state is not None:
                emit(Notice(f"resuming {run_dir.name} after epoch {state[1]['epoch']} of "
                            f"{state[1]['epochs']}"))
            return _fit_and_report(config, index, split, run_dir, emit, control, state,
                                   fresh=False)

    return _guarded(work, run_dir, emit)


def _saved_device(run_dir: Path) -> str:
    try:
        return str(read_config(run_dir)["train"]["device"])
    except Exception:  # noqa: BLE001 - resume itself says what is wrong with the folder
        return "auto"


def _holds_a_run(out_dir: Path) -> str:
    holder = RunLock.holder(out_dir)
    if holder is not None:
        raise RunBusy(f"'{out_dir}' is in use: {holder} is training into it. Wait for it to "
                      "end, or choose another output folder.")
    status = summarize(out_dir)
    hint = (f"; to continue it: tlstudio train --resume {out_dir}" if status.resumable else "")
    return f"'{out_dir}' already holds a run ({status.status}){hint}. Choose a new folder."


def _check_new_out_dir(out_dir: Path, dataset) -> None:
    if (out_dir / CONFIG).exists():
        raise TrainingError(_holds_a_run(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"'{out_dir}' is a file; choose a folder for the run")
    root = Path(dataset.root if isinstance(dataset, DatasetIndex) else dataset).expanduser()
    folder = root if root.is_dir() else root.parent if root.is_file() else None
    if folder is not None:  # a CSV's folder is the user's data too
        data, target = folder.resolve(), out_dir.resolve()
        if target == data or data in target.parents:
            raise TrainingError(
                f"the output folder '{out_dir}' is inside the dataset folder '{folder}'; "
                "tlstudio never writes into your data. Choose an output folder elsewhere.")
    existing = out_dir.resolve()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise TrainingError(f"cannot write the run into '{out_dir}': '{existing}' is not a "
                            "folder you can write to. Choose another output folder.")


def _check_paths(config: TrainConfig) -> None:
    """Explicit module paths must exist in the backbone (checked on the bare architecture,
    before any slow work)."""
    paths = config.frozen_paths if config.frozen_paths is not None else config.trainable_paths
    if not paths or config.mode == "linear-probe":
        return
    valid = known_paths(build_model(config.backbone, 2, pretrained=False))
    unknown = [p for p in paths if p not in valid]
    if unknown:
        raise TrainingError(
            f"{config.backbone} has no module {', '.join(repr(p) for p in unknown)}; "
            f"see `tlstudio layers --backbone {config.backbone}` for its module paths")


def _freeze_plan(model, config: TrainConfig) -> FreezePlan:
    if config.mode == "linear-probe":
        return preset_plan(model, "head")
    if config.trainable_paths is not None:
        plan = FreezePlan(model, [""])
        for path in config.trainable_paths:
            plan.unfreeze(path)
        return plan
    if config.frozen_paths is not None:
        return FreezePlan(model, config.frozen_paths)
    return preset_plan(model, config.freeze or "last-1")


def _scan(dataset, config: TrainConfig, prep, emit) -> DatasetIndex:
    """Scanning decodes each image once and leaves it in the cache for training (under
    torchrun the first process of each machine fills it, then the others read it)."""
    with local_first(current()):
        return scan(dataset, progress=lambda d, t: emit(StageProgress("scanning", d, t)),
                    workers=config.workers, prep=prep, cache=image_cache(config))


def _train_new(config, dataset, out_dir, emit, control, split) -> TrainResult:
    seed_everything(config.seed)
    prep = preprocessing_for(config)
    index = dataset if isinstance(dataset, DatasetIndex) else _scan(dataset, config, prep, emit)
    unused = index.unused()
    if unused:
        emit(Notice(f"{count(len(unused), 'file or row', 'files or rows')} not used: "
                    + "; ".join(map(str, unused[:5]))
                    + (f" ... (all {len(unused)} are listed in the run's config.json)"
                       if len(unused) > 5 else "")))
    for notice in (p for p in index.problems if p.kind == "notice"):
        emit(Notice(str(notice)))
    if split is None:
        split = make_split(index, config.val_fraction, config.test_fraction, config.seed)
    return _fit_and_report(config, index, split, out_dir, emit, control, None, fresh=True)


def _fit_and_report(config, index, split, out_dir, emit, control, state, fresh) -> TrainResult:
    seed_everything(config.seed)
    spec = get_spec(config.backbone)
    prep = preprocessing_for(config)
    emit(StageProgress("loading backbone", 0, 1))
    if state is not None:  # every weight comes from the saved state, before any
        model = build_model(spec, len(index.classes), pretrained=False)  # frozen pass
        model.load_state_dict(model_weights(state[0]), strict=True)
    else:
        model = build_model(spec, len(index.classes), weights=config.weights,
                            pretrained=config.pretrained)
        init_head(model, config.seed)
        if config.init_from:
            _start_from_run(model, config.init_from, spec.name, index.classes)
    emit(StageProgress("loading backbone", 1, 1))
    setup = pick_device(config.device, config.amp)
    world = setup.world
    control = shared_control(control, world)
    if setup.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick kernels
    record = RunRecord(out_dir) if world.main else None  # only rank 0 touches the folder
    if fresh and world.main:  # first, so a run stopped while decoding is one resume accepts
        _write_config(record, config, spec, index, split, prep, _freeze_plan(model, config),
                      model, setup)
    prepared = prepare_data(index, split, prep, config, control, emit)
    _check_same_images(world, prepared)
    choose = config.mode == "recommended" and state is None  # not chosen yet, or again
    if choose:  # rank 0's choice for every process (GPUs may round a gauge differently)
        config = agree(world, recommended.choose(config, model, prepared, prep, setup, emit))
    plan = _freeze_plan(model, config)
    apply_freeze_plan(model, plan)
    emit(Notice(f"training on {setup.description}; {plan.summary()}"))
    if choose and world.main:  # what was chosen, recorded before any epoch
        _write_config(record, config, spec, index, split, prep, plan, model, setup)
    recorder = [RunRecorder(record)] if world.main else []  # rank 0 writes the run
    job = TrainingJob(model, prepared.data, prep, config, setup, control, emit)
    lp_ft = config.mode == "recommended"
    probed = lp_ft and config.probe_first is not False
    if probed and state is None and not probe_first(job):
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(out_dir, {}, index, cancelled=True, secondary=not world.main)
    session = build_session(
        job, [BestScore(), EarlyStopping(config.patience, emit), History(), *recorder,
              ProgressEvents(emit)], evaluate_start=bool(config.init_from) or probed,
        lr_factors=stage_factors(model, stages(model)) if lp_ft else None)
    if state is not None:
        if world.main:
            recorder[0].repair(*state)
        session.load_state(*state)
    if state is not None and state[1]["finished"]:  # killed while writing the results
        fit = FitResult(session.best_epoch, session.epoch, session.stop_early)
    else:
        fit = session.fit()
    compare = not fit.cancelled and auto_compare(config, len(index.items), setup.device.type)
    # rank 0's word: only it knows whether the best weights are on disk
    compare = agree(world, compare and (not world.main or (out_dir / WEIGHTS).exists()))
    if not world.main:  # the comparison from scratch is trained by every process too
        if compare:
            compare_with_scratch(config, index, split, out_dir, emit, control)
        return TrainResult(out_dir, {}, index, cancelled=fit.cancelled, secondary=True,
                           stopped_early=fit.stopped_early, epochs_run=fit.epochs_run)
    if not (out_dir / WEIGHTS).exists():
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(out_dir, {}, index, cancelled=True)

    model.load_state_dict(load_file(str(out_dir / WEIGHTS)))
    session.control = Control()  # the results are written even after a stop
    session.batches.world = SINGLE  # scored by rank 0 alone
    result = write_results(record, job, session, fit, index, prepared)
    if compare:
        transfer = compare_with_scratch(config, index, split, out_dir, emit, control)
        if transfer is not None:
            result["transfer"] = transfer
            record.write_json("metrics.json", result)
    emit(Finished(str(out_dir), result, stopped_early=fit.stopped_early,
                  cancelled=fit.cancelled))
    return TrainResult(out_dir, result, index, cancelled=fit.cancelled,
                       stopped_early=fit.stopped_early, epochs_run=fit.epochs_run)


def _check_same_images(world: World, prepared) -> None:
    """Under torchrun every process must hold the same images (a file readable by one and
    not by another, e.g. on a flaky network share, would misalign their shares)."""
    if not world.many:
        return
    differs = agree(world, prepared.positions) != prepared.positions  # rank 0's images
    if sum_values(world, [float(differs)])[0]:  # every process stops alike
        raise TrainingError("the training processes read different sets of images (a file "
                            "one could read and another could not); check the data folder "
                            "is the same and readable on every machine, then start again")


def _write_config(record, config, spec, index, split, prep, plan, model, setup) -> None:
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
            "split_sizes": {name: len(pos) for name, pos in split.as_dict().items()},
            "problems": [str(p) for p in index.problems],
        },
    })
    record.write_json(SPLIT, {name: [index.items[p].key for p in pos]
                              for name, pos in split.as_dict().items()})


def _start_from_run(model, run_dir: str, backbone: str, classes: list[str]) -> None:
    previous = load_run(run_dir)
    if previous.config["backbone"]["name"] != backbone:
        raise TrainingError(
            f"'{run_dir}' was trained with {previous.config['backbone']['name']}, not {backbone}"
        )
    if previous.classes != classes:
        raise TrainingError(f"'{run_dir}' has classes {previous.classes}, this dataset {classes}")
    model.load_state_dict(previous.model.state_dict())  # the previous head included
