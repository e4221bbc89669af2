"""A threshold for a target sensitivity reaches it; temperature scaling makes an
over-confident model honest without changing a single decision."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.evaluation.calibration import apply_temperature, ece, fit_temperature, nll
from tlstudio.core.evaluation.operating_point import (
    ThresholdError,
    choose_threshold,
    curves,
    parse_rule,
    predict_at,
)


def _scores(rng, n=300):
    positive = rng.random(n) < 0.4
    scores = 1 / (1 + np.exp(-rng.normal(np.where(positive, 1.0, -1.0), 1.2)))
    return scores, positive


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 0.99])
def test_threshold_for_a_target_sensitivity_reaches_it_on_validation(target):
    scores, positive = _scores(np.random.default_rng(int(target * 100)))
    t = choose_threshold(scores, positive, f"sensitivity={target}")
    reached = (scores[positive] >= t).mean()
    assert reached >= target
    higher = scores[scores > t]
    if higher.size:  # and it is the highest such threshold: the next one up falls short
        assert (scores[positive] >= higher.min()).mean() < target


@pytest.mark.parametrize("target", [0.8, 0.95])
def test_threshold_for_a_target_specificity_reaches_it(target):
    scores, positive = _scores(np.random.default_rng(5))
    t = choose_threshold(scores, positive, f"specificity={target}")
    assert (scores[~positive] < t).mean() >= target


def test_youden_beats_the_default_half_on_a_shifted_model():
    rng = np.random.default_rng(7)
    scores, positive = _scores(rng)
    shifted = scores**3  # a model whose positives sit low: 0.5 misses most of them
    t = choose_threshold(shifted, positive, "youden")
    j = lambda th: (shifted[positive] >= th).mean() + (shifted[~positive] < th).mean() - 1  # noqa: E731
    assert j(t) > j(0.5) + 0.1
    probs = np.stack([1 - shifted, shifted], axis=1)
    assert (predict_at(probs, t) == (shifted >= t)).all()
    roc = curves(shifted, positive)["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0


def test_rules_are_checked():
    assert parse_rule("Sensitivity=0.9") == ("sensitivity", 0.9)
    for bad in ("sensitivity=1.5", "sensitivity=abc", "precision=0.9", "youden=1"):
        with pytest.raises(ThresholdError):
            parse_rule(bad)
    with pytest.raises(ThresholdError, match="one class"):
        choose_threshold(np.array([0.2, 0.7]), np.array([True, True]))


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    rng = np.random.default_rng(11)

    def overconfident(n):
        targets = rng.integers(0, 3, size=n)
        logits = rng.normal(0, 1, size=(n, 3))
        logits[np.arange(n), targets] += 1.0  # right about 60 % of the time...
        logits *= 4.0  # ...but says 95 %+
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True), targets

    val_p, val_y = overconfident(600)
    test_p, test_y = overconfident(600)
    t = fit_temperature(val_p, val_y)
    assert t > 2.0
    calibrated = apply_temperature(test_p, t)
    assert ece(calibrated, test_y) < 0.5 * ece(test_p, test_y)
    assert nll(calibrated, test_y) < nll(test_p, test_y)
    assert (calibrated.argmax(1) == test_p.argmax(1)).all()  # no decision changes
    assert np.allclose(apply_temperature(test_p, 1.0), test_p)
