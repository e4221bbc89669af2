"""Intervals that mean what they say: 95 % intervals cover the truth about 95 % of the time,
and with patients, whole patients are resampled."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import roc_auc_score

from tlstudio.core.evaluation.uncertainty import (
    Resampler,
    format_ci,
    interval,
    weighted_auc,
    with_intervals,
)

REPETITIONS = 200


def _binary(correct: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    targets = rng.integers(0, 2, size=len(correct))
    return targets, np.where(correct, targets, 1 - targets)


def test_accuracy_intervals_cover_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    truth, hits = 0.8, 0
    for rep in range(REPETITIONS):
        targets, predicted = _binary(rng.random(150) < truth, rng)
        probs = np.eye(2)[predicted]
        result = with_intervals(probs, targets, predicted, ["a", "b"], replicates=1000,
                                seed=rep)
        low, high = result["accuracy_ci"]
        hits += low <= truth <= high
    assert 0.92 <= hits / REPETITIONS <= 0.98, hits


def test_auc_intervals_cover_the_truth():
    rng = np.random.default_rng(2)
    truth = 0.5 * math.erfc(-1.0 / 2.0)  # positives N(1, 1) against negatives N(0, 1)
    hits = 0
    for rep in range(REPETITIONS):
        targets = np.repeat([0, 1], 100)
        scores = rng.normal(targets.astype(float), 1.0)
        probs = np.stack([1 - 1 / (1 + np.exp(-scores)), 1 / (1 + np.exp(-scores))], axis=1)
        result = with_intervals(probs, targets, probs.argmax(1), ["a", "b"], replicates=1000,
                                seed=rep)
        assert abs(result["roc_auc"] - roc_auc_score(targets, scores)) < 1e-12
        low, high = result["roc_auc_ci"]
        hits += low <= truth <= high
    assert 0.92 <= hits / REPETITIONS <= 0.98, hits


def test_grouped_bootstrap_resamples_patients_and_covers_where_images_do_not():
    rng = np.random.default_rng(3)
    patients, per_patient, truth = 60, 6, 0.8
    groups = np.repeat([f"p{i}" for i in range(patients)], per_patient)
    weights = Resampler.draw(len(groups), groups, replicates=50, seed=0).weights
    for g in range(patients):  # a patient's images are drawn together, or not at all
        block = weights[:, g * per_patient:(g + 1) * per_patient]
        assert (block == block[:, :1]).all()
    hits_groups = hits_images = 0
    for rep in range(REPETITIONS):
        # patients differ: some are easy, some hard (mean accuracy 0.8)
        p = rng.beta(2.0, 0.5, size=patients)
        correct = rng.random(len(groups)) < np.repeat(p, per_patient)
        targets, predicted = _binary(correct, rng)
        probs = np.eye(2)[predicted]
        grouped = with_intervals(probs, targets, predicted, ["a", "b"], groups=groups,
                                 replicates=1000, seed=rep)
        plain = with_intervals(probs, targets, predicted, ["a", "b"], replicates=1000,
                               seed=rep)
        assert grouped["intervals"]["resampled"] == "groups"
        hits_groups += grouped["accuracy_ci"][0] <= truth <= grouped["accuracy_ci"][1]
        hits_images += plain["accuracy_ci"][0] <= truth <= plain["accuracy_ci"][1]
    assert 0.92 <= hits_groups / REPETITIONS <= 0.98, hits_groups
    assert hits_images / REPETITIONS < 0.9, hits_images  # pretending images are independent


def test_per_class_rates_and_how_they_read():
    targets = np.array([0] * 40 + [1] * 20)
    predicted = np.array([0] * 36 + [1] * 4 + [1] * 15 + [0] * 5)
    result = with_intervals(np.eye(2)[predicted], targets, predicted, ["no", "yes"])
    yes = result["per_class"]["yes"]
    assert yes["sensitivity"] == 15 / 20 and yes["specificity"] == 36 / 40
    assert yes["ppv"] == 15 / 19 and yes["npv"] == 36 / 41 and yes["support"] == 20
    assert yes["sensitivity_ci"][0] < 0.75 < yes["sensitivity_ci"][1]
    assert result["accuracy"] == 51 / 60
    assert format_ci(0.911, [0.852, 0.956]) == "91.1 % (95 % CI 85.2–95.6)"
    assert format_ci(None, None) == "n/a"
    assert interval(np.array([np.nan])) != interval(np.array([0.5]))


def test_weighted_auc_handles_ties_and_weights():
    scores = np.array([0.1, 0.4, 0.4, 0.8, 0.4])
    positive = np.array([0, 0, 1, 1, 1], dtype=bool)
    ones = np.ones((1, 5))
    assert abs(weighted_auc(scores, positive, ones)[0] - roc_auc_score(positive, scores)) < 1e-12
    twice = np.array([[1, 1, 2, 1, 1.0]])  # image 2 drawn twice == listed twice
    expanded = roc_auc_score(np.r_[positive, True], np.r_[scores, 0.4])
    assert abs(weighted_auc(scores, positive, twice)[0] - expanded) < 1e-12


def test_a_perfect_small_test_part_still_gets_an_honest_interval():
    """8 of 8 right: the bootstrap collapses to [100, 100]; the interval a reviewer expects
    (Wilson) goes down to about 68 %."""
    from tlstudio.core.evaluation.uncertainty import with_intervals

    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.eye(2)[targets] * 0.9 + 0.05
    out = with_intervals(probs, targets, targets, ["a", "b"])
    assert out["accuracy"] == 1.0
    low, high = out["accuracy_ci"]
    assert 0.6 < low < 0.75 and high == 1.0
    assert out["per_class"]["a"]["sensitivity_ci"][0] < 0.6  # 4 of 4: wide
    assert out["roc_auc_ci"][0] < 1.0
