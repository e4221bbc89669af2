"""What a finished (or stopped) run writes from its best checkpoint: metrics.json,
predictions.csv and the out-of-distribution warning.

Validation chose the epoch, and here also the temperature and the threshold; the test part,
when one was held out, is the headline with its intervals. Both are scored on the same path
that chose the epoch.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ..engine.events import StageProgress
from ..engine.inference import predict_with_features
from ..evaluation.held_out import Decision, held_out
from ..evaluation.metrics import evaluate
from . import familiarity, source_domain

SCORING = "scoring the best epoch on validation and test"

def write_results(record, job, session, fit, index, prepared) -> dict:
    """Score the job's model (holding its best checkpoint) on validation and test, fit the
    out-of-distribution warning, write predictions.csv and metrics.json; returns metrics."""
    model, config, prep, setup, emit = job.model, job.config, job.prep, job.setup, job.emit
    emit(StageProgress(SCORING, 0, 1))  # after a Stop too: the user sees what is left to do
    _, _, probs = session.validate()
    test_probs, test_features = (
        predict_with_features(model, prepared.test_images, prep, setup, config.batch_size)
        if len(prepared.test_targets) else (None, None))
    emit(StageProgress(SCORING, 1, 1))
    emit(StageProgress("fitting the out-of-distribution warning", 0, 1))
    _, val_features = predict_with_features(model, prepared.data.val_images, prep, setup,
                                            config.batch_size)
    recorder = source_domain.recorder(  # what the training images hand each BatchNorm
        model, min(len(prepared.data.train_targets), familiarity.FIT_IMAGES), config.seed)
    with recorder or contextlib.nullcontext():
        detector, ood_summary = familiarity.fit_for_run(
            model, prepared, prep, setup, config.batch_size, config.seed, val_features,
            test_features)
    if recorder is not None:
        source_domain.save(record.dir, recorder.sums, len(recorder.parts))
    emit(StageProgress("fitting the out-of-distribution warning", 1, 1))
    result = metrics_block(config, index, prepared, probs, test_probs, fit)
    result["ood"] = ood_summary
    familiarity.save(record.dir, detector)
    parts = [("val", prepared.data.val_targets, probs)]
    if test_probs is not None:
        parts.append(("test", prepared.test_targets, test_probs))
    decision = Decision.from_dict(result["decision"])
    calibrated = decision.calibrate(np.concatenate([pr for _, _, pr in parts]))
    record.write_predictions(
        [(name, index.items[p].key) for name, _, _ in parts for p in prepared.positions[name]],
        np.concatenate([t for _, t, _ in parts]), calibrated, index.classes,
        decision.call(calibrated))
    record.write_json("metrics.json", result)
    return result


def metrics_block(config, index, prepared, probs, test_probs, fit) -> dict:
    """metrics.json: validation (which chose the epoch, temperature and threshold) and, when
    a test part was held out, the headline test block with its intervals."""
    def groups(part: str):
        found = [index.items[p].group for p in prepared.positions[part]]
        return None if all(g is None for g in found) else [
            g if g is not None else f"__single__{k}" for k, g in enumerate(found)]

    val_y = prepared.data.val_targets
    decision, val, test = held_out(
        probs, val_y, test_probs, prepared.test_targets if test_probs is not None else None,
        index.classes, config.threshold, groups("test"), groups("val"), config.seed,
        _attributes(index, prepared.positions["val"]),
        _attributes(index, prepared.positions["test"]))
    plain = evaluate(probs, val_y, index.classes)  # argmax, uncalibrated: the epoch's view
    result = {
        "val_accuracy": plain["accuracy"], "val_loss": plain["loss"], **plain,
        "validation": val, "decision": decision.as_dict(),
        "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run,
        "stopped_early": fit.stopped_early, "cancelled": fit.cancelled,
        "headline": "test" if test is not None else "validation",
    }
    if test is not None:
        result["test"] = test
        result["test_accuracy"] = test["accuracy"]
    return result


def _attributes(index, positions: list[int]) -> list[dict] | None:
    """Subgroup values per evaluated image (further CSV columns, DICOM header values), as the
    scan found them."""
    rows = [dict(index.items[p].attributes) for p in positions]
    return rows if any(rows) else None
