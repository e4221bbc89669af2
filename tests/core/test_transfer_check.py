"""The negative-transfer check: the same backbone from random weights on the same split, and a
verdict on what pretraining gained, in metrics.json and in words."""

from __future__ import annotations

import json

import pytest

from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.history import read_predictions
from tlstudio.core.runs.training import train
from tlstudio.core.runs.transfer import auto_compare, verdict


def test_verdict_says_helped_hurt_or_unclear():
    assert verdict(0.12, [0.05, 0.2]).startswith("Pretraining gained +12.0 points")
    assert verdict(-0.1, [-0.2, -0.02]).startswith("Warning: pretraining did worse")
    assert "no clear difference" in verdict(0.01, [-0.05, 0.07])


def test_on_by_default_only_where_cheap():
    recommended = TrainConfig()
    assert auto_compare(recommended, 300, "cpu") and not auto_compare(recommended, 800, "cpu")
    assert auto_compare(recommended, 1500, "cuda")
    assert not auto_compare(TrainConfig(mode="linear-probe"), 300, "cpu")
    assert auto_compare(TrainConfig(mode="linear-probe", compare_scratch=True), 5000, "cpu")
    assert not auto_compare(TrainConfig(compare_scratch=False), 300, "cpu")


@pytest.mark.slow
def test_scratch_baseline_on_the_same_images(shapes_folder, tmp_path):
    seen: list = []
    out = tmp_path / "run"
    result = train(TrainConfig(mode="linear-probe", epochs=5, batch_size=16, workers=2,
                               compare_scratch=True), shapes_folder, out, [seen.append])
    transfer = result.metrics["transfer"]
    assert json.loads((out / "metrics.json").read_text())["transfer"] == transfer
    scratch = json.loads((out / "scratch" / "config.json").read_text())
    assert scratch["train"]["pretrained"] is False and scratch["frozen_paths"] == []
    assert scratch["train"]["epochs"] == 8  # the fine-tune budget, at least
    # the same held-out images, scored from each run's own predictions
    ours = read_predictions(out, "test")
    theirs = read_predictions(out / "scratch", "test")
    assert sorted(r.path for r in ours) == sorted(r.path for r in theirs)
    assert transfer["pretrained_accuracy"] == pytest.approx(
        sum(r.correct for r in ours) / len(ours))
    assert transfer["scratch_accuracy"] == pytest.approx(
        sum(r.correct for r in theirs) / len(theirs))
    assert transfer["gain"] == pytest.approx(
        transfer["pretrained_accuracy"] - transfer["scratch_accuracy"])
    low, high = transfer["gain_ci"]
    assert low <= transfer["gain"] <= high
    assert transfer["verdict"] == verdict(transfer["gain"], transfer["gain_ci"])
    # the baseline's epochs reach listeners as a stage of this run, not as its own epochs
    assert any(isinstance(e, ev.StageProgress) and e.stage ==
               "training from scratch for comparison" for e in seen)
    assert [e for e in seen if isinstance(e, ev.Finished)][-1].metrics["transfer"] == transfer
    assert sum(isinstance(e, ev.Finished) for e in seen) == 1
