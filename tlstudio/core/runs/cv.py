"""Cross-validation for small datasets: k stratified, group-aware folds, then a final model.

With a few hundred images one held-out test part is small and its number moves with the
split. Here every image (every patient) is tested exactly once: fold k trains on the other
folds (a validation share of them chooses epoch, threshold and temperature) and reports on
fold k. The folds' numbers give a mean and a spread. The final model is trained as the user
chooses: on every image (``all``: the cross-validation is the estimate), on the usual
train/validation/test split (``split``), or not at all (``none``).

::

    out/
      folds/fold-1 ... fold-K   one complete run each (its test part = the fold)
      cv.json                   the cross-validation block
      config.json, ...          the final model's run (unless ``none``); its metrics.json
                                holds the same ``cv`` block
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...errors import UserError
from ..data.dataset import DatasetIndex
from ..data.split import make_folds, make_split
from ..engine.config import TrainConfig
from ..engine.events import Cancelled, Control, Failed, Finished, Listener, Notice
from .record import write_atomic
from .training import (
    TrainingError,
    TrainResult,
    _scan,
    preprocessing_for,
    train,
    user_message,
)

FINALS = ("all", "split", "none")
SUMMARISED = ("accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "ece")


def summarise(folds: list[dict]) -> dict:
    """Mean and standard deviation (over folds) of each metric every fold has."""
    out: dict = {"k": len(folds), "folds": folds}
    for name in SUMMARISED:
        values = [f[name] for f in folds if f.get(name) is not None]
        if len(values) == len(folds) and values:
            out[f"{name}_mean"] = float(np.mean(values))
            out[f"{name}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return out


def cross_validate(config: TrainConfig, dataset, out_dir: str | Path, folds: int,
                   final: str = "all", listeners: Iterable[Listener] = (),
                   control: Control | None = None) -> TrainResult:
    """Train ``folds`` runs and the final one; returns the final run's result (or, with
    ``final='none'``, a result holding only the ``cv`` block)."""
    listeners = list(listeners)
    control = control or Control()
    out_dir = Path(out_dir)
    if final not in FINALS:
        raise UserError(f"--final must be one of {', '.join(FINALS)}, not '{final}'")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise UserError(f"--folds must be a whole number of at least 2, not {folds!r}")
    config = config.resolved()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingError(f"'{out_dir}' is not empty; cross-validation needs a new folder")

    def emit(event) -> None:
        for listener in listeners:
            listener(event)

    def inner(event) -> None:  # a fold's own end is not the end of the whole job
        if not isinstance(event, Finished | Failed):
            emit(event)

    try:
        return _cross_validate(config, dataset, out_dir, folds, final, emit, inner, control)
    except Cancelled:
        emit(Finished(str(out_dir), {}, cancelled=True))
        return TrainResult(out_dir, {}, None, cancelled=True)
    except Exception as exc:  # a fold's Failed was held back: the whole job failed
        emit(Failed(user_message(exc)))
        raise


def _cross_validate(config, dataset, out_dir, folds, final, emit, inner, control):
    index = (dataset if isinstance(dataset, DatasetIndex)
             else _scan(dataset, config, preprocessing_for(config), emit))
    splits = make_folds(index, folds, config.val_fraction, config.seed)
    rows = []
    # the folds measure the model; a from-scratch baseline per fold is the final run's job
    fold_config = replace(config, compare_scratch=False)
    for k, split in enumerate(splits, 1):
        emit(Notice(f"fold {k} of {folds}: {len(split.train)} training, {len(split.val)} "
                    f"validation, {len(split.test)} test images"))
        result = train(fold_config, index, out_dir / "folds" / f"fold-{k}", [inner], control,
                       split=split)
        if result.cancelled:
            emit(Finished(str(out_dir), {}, cancelled=True))
            return TrainResult(out_dir, {}, index, cancelled=True)
        test = result.metrics["test"]
        rows.append({"fold": k, "n": test["n"], "run": f"folds/fold-{k}",
                     **{name: test.get(name) for name in SUMMARISED},
                     "accuracy_ci": test["accuracy_ci"], "best_epoch":
                     result.metrics["best_epoch"]})
        emit(Notice(f"fold {k} of {folds}: test accuracy {test['accuracy']:.3f} "
                    f"on {test['n']} images"))
    cv = summarise(rows)
    write_atomic(out_dir / "cv.json", json.dumps(cv, indent=2))
    emit(Notice(f"cross-validation over {folds} folds: accuracy {cv['accuracy_mean']:.3f} "
                f"± {cv['accuracy_std']:.3f} (mean ± SD)"))
    if final == "none":
        metrics = {"cv": cv}
        emit(Finished(str(out_dir), metrics))
        return TrainResult(out_dir, metrics, index)

    final_config = config if final == "split" else replace(config, test_fraction=0.0)
    split = make_split(index, final_config.val_fraction, final_config.test_fraction,
                       final_config.seed)
    ended: list[Finished] = []
    result = train(final_config, index, out_dir, [inner, lambda e: ended.append(e)
                                                  if isinstance(e, Finished) else None],
                   control, split=split)
    if result.metrics:
        result.metrics["cv"] = cv
        metrics_file = out_dir / "metrics.json"
        stored = json.loads(metrics_file.read_text(encoding="utf-8"))
        stored["cv"] = cv
        write_atomic(metrics_file, json.dumps(stored, indent=2, default=str))
    for event in ended:
        emit(replace(event, metrics=result.metrics))
    return result
