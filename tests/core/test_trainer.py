"""Training on small generated images: events, stop/pause, run folder, reload, predict."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from safetensors.torch import load_file

from tlstudio.core.data.dataset import scan
from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.history import load_run, read_epochs
from tlstudio.core.runs.predict import Predictor
from tlstudio.core.runs.training import TrainingError, train


def _quick(**kw) -> TrainConfig:
    base = dict(backbone="efficientnet_lite0", batch_size=16, seed=0, workers=2)
    base.update(kw)
    return TrainConfig(**base)


def test_linear_probe_learns_shapes_and_writes_the_run(shapes_folder, tmp_path):
    seen: list = []
    out = tmp_path / "run"
    result = train(_quick(mode="linear-probe", epochs=15), shapes_folder, out, [seen.append])

    assert result.metrics["val_accuracy"] >= 0.9  # discs vs squares: far above chance
    for name in ("config.json", "split.json", "metrics.jsonl", "metrics.json",
                 "best.safetensors", "predictions.csv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["per_class"]) == {"disc", "square"}
    assert np.sum(metrics["confusion_matrix"]) == metrics["count"]
    epochs = read_epochs(out)
    assert len(epochs) == metrics["epochs_run"] and epochs[0]["epoch"] == 1

    kinds = [type(e) for e in seen]
    assert kinds.count(ev.EpochDone) == metrics["epochs_run"]
    assert ev.StageProgress in kinds and ev.BatchDone in kinds
    assert kinds[-1] is ev.Finished
    assert kinds.index(ev.EpochStarted) < kinds.index(ev.EpochDone)

    run = load_run(out)
    assert run.classes == ["disc", "square"]
    lines = (out / "predictions.csv").read_text().splitlines()
    assert len(lines) == metrics["count"] + metrics["test"]["n"] + 1
    assert lines[0].startswith("part,path,label,predicted")
    assert {line.split(",")[0] for line in lines[1:]} == {"val", "test"}


def test_the_held_out_test_reports_with_intervals_and_the_validation_threshold(
        shapes_folder, tmp_path):
    """metrics.json's test block in the shape other tools rely on; the threshold chosen on
    validation is what predict applies."""
    out = tmp_path / "run"
    train(_quick(mode="linear-probe", epochs=10, threshold="sensitivity=1.0"), shapes_folder,
          out)
    metrics = json.loads((out / "metrics.json").read_text())
    split = json.loads((out / "split.json").read_text())
    test = metrics["test"]
    assert metrics["headline"] == "test" and test["n"] == len(split["test"]) >= 6
    assert not set(split["test"]) & (set(split["val"]) | set(split["train"]))
    for name in ("accuracy", "balanced_accuracy", "roc_auc"):
        low, high = test[f"{name}_ci"]
        assert low <= test[name] <= high, name
    assert test["accuracy"] >= 0.8  # far above chance on images no choice looked at
    for row in test["per_class"].values():
        for name in ("sensitivity", "specificity", "ppv", "npv", "f1"):
            assert f"{name}_ci" in row
    assert 0.0 < test["threshold"] < 1.0 and test["threshold_rule"] == "sensitivity=1.0"
    assert test["positive_class"] == "square" and "sensitivity_ci" in test
    assert metrics["validation"]["sensitivity"] == 1.0  # the target, reached on validation
    assert test["ece"] >= 0 and test["temperature"] > 0
    assert np.sum(test["confusion_matrix"]) == test["n"]

    # predict calls 'square' exactly when its calibrated probability reaches the threshold
    rows = Predictor.from_run(out, device="cpu").predict([shapes_folder])
    for r in rows:
        assert r.label == ("square" if r.probabilities["square"] >= test["threshold"]
                           else "disc")
    assert abs(sum(rows[0].probabilities.values()) - 1.0) < 1e-6


def test_a_threshold_rule_that_cannot_be_applied_is_refused_before_training(
        shapes_folder, tmp_path):
    with pytest.raises(TrainingError, match="--threshold"):
        train(_quick(threshold="sensitivity=2"), shapes_folder, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_predictions_after_reload_match_the_run(shapes_folder, tmp_path):
    out = tmp_path / "run"
    train(_quick(mode="linear-probe", epochs=10), shapes_folder, out)
    predictor = Predictor.from_run(out, device="cpu")
    results = predictor.predict(
        [shapes_folder / "disc", shapes_folder / "square" / "square_000.png"])
    assert len(results) == 25
    assert sum(r.label == "disc" for r in results[:24]) >= 20
    assert abs(sum(results[0].probabilities.values()) - 1.0) < 1e-5
    # the in-run (calibrated) probabilities and calls are reproduced from the saved run
    for line in (out / "predictions.csv").read_text().splitlines()[1:]:
        part, path, _, called, confidence = line.split(",")[:5]
        again = predictor.predict([path])[0]
        assert again.label == called
        assert again.probabilities[called] == pytest.approx(float(confidence), abs=1e-4)


def test_fine_tune_trains_only_what_is_unfrozen(shapes_folder, tmp_path):
    out = tmp_path / "ft"
    result = train(_quick(mode="fine-tune", freeze="last-1", epochs=2, augmentation="photo"),
                   shapes_folder, out)
    assert result.metrics["epochs_run"] == 2
    config = json.loads((out / "config.json").read_text())
    assert "blocks.5" in config["frozen_paths"] and "conv_stem" in config["frozen_paths"]
    from tlstudio.core.models.backbones import build_model

    start = build_model("efficientnet_lite0", 2).state_dict()
    best = load_file(str(out / "best.safetensors"))
    assert np.allclose(best["blocks.2.0.conv_pw.weight"], start["blocks.2.0.conv_pw.weight"])
    assert np.allclose(best["bn1.running_mean"], start["bn1.running_mean"])  # frozen BN
    assert not np.allclose(best["blocks.6.0.conv_pw.weight"], start["blocks.6.0.conv_pw.weight"])


def test_stop_keeps_what_was_saved(shapes_folder, tmp_path):
    control = ev.Control()
    seen: list = []

    def listener(event):
        seen.append(event)
        if isinstance(event, ev.EpochDone) and event.epoch == 1:
            control.stop()

    out = tmp_path / "stopped"
    result = train(_quick(mode="fine-tune", freeze="head", epochs=20, batch_size=8),
                   shapes_folder, out, [listener], control)
    assert result.cancelled and result.metrics["epochs_run"] == 1
    assert (out / "best.safetensors").is_file()
    assert isinstance(seen[-1], ev.Finished) and seen[-1].cancelled


def test_stop_before_anything_is_learned(shapes_folder, tmp_path):
    control = ev.Control()
    control.stop()
    result = train(_quick(), shapes_folder, tmp_path / "never", control=control)
    assert result.cancelled and not (tmp_path / "never" / "best.safetensors").exists()


def test_pause_blocks_between_batches(shapes_folder, tmp_path):
    control = ev.Control()
    batches: list = []
    paused_once = threading.Event()

    def listener(event):
        if isinstance(event, ev.BatchDone):
            batches.append(event)
            if len(batches) == 1:
                control.pause()
                paused_once.set()

    thread = threading.Thread(target=train, args=(
        _quick(mode="fine-tune", freeze="head", epochs=1, batch_size=8), shapes_folder,
        tmp_path / "paused", [listener], control))
    thread.start()
    assert paused_once.wait(120)
    thread.join(1.5)
    assert thread.is_alive() and len(batches) == 1  # held at the checkpoint
    control.resume()
    thread.join(120)
    assert not thread.is_alive() and len(batches) > 1


def test_bad_inputs_fail_with_messages(shapes_folder, tmp_path):
    failures: list = []
    with pytest.raises(TrainingError, match="inside the dataset folder"):
        train(_quick(), shapes_folder, shapes_folder / "runs", [failures.append])
    assert isinstance(failures[-1], ev.Failed) and "never writes" in failures[-1].message
    once = _quick(epochs=2, mode="linear-probe")  # any finished run will do
    train(once, shapes_folder, tmp_path / "once")
    with pytest.raises(TrainingError, match="already holds a run"):
        train(once, shapes_folder, tmp_path / "once")
    with pytest.raises(ValueError, match="augmentation"):
        train(_quick(augmentation="sparkles"), scan(shapes_folder), tmp_path / "aug")
