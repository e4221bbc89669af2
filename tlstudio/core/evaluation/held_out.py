"""Validation chooses, the held-out test reports.

After training, the validation part (which already chose the epoch) also fits the
temperature and, for two classes, the threshold. Those choices are then frozen and applied
to the test part, whose numbers are the headline: with bootstrap intervals, ROC and PR
curves, calibration before and after. Nothing here looks at a test label before every
choice is made.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calibration import apply_temperature, ece, fit_temperature, reliability
from .metrics import cross_entropy
from .operating_point import ThresholdError, choose_threshold, curves, predict_at
from .subgroups import subgroup_metrics
from .uncertainty import with_intervals


@dataclass(frozen=True)
class Decision:
    """How a run turns a model's output into an answer: temperature, then (two classes) the
    probability of the positive class (``classes[1]``) that calls it positive."""

    temperature: float = 1.0
    threshold: float | None = None
    rule: str | None = None
    positive: str | None = None

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        if self.temperature == 1.0:
            return np.asarray(probabilities, dtype=np.float64)
        return apply_temperature(probabilities, self.temperature)

    def call(self, calibrated: np.ndarray) -> np.ndarray:
        """Predicted class per row of calibrated probabilities."""
        calibrated = np.asarray(calibrated)
        if self.threshold is None:
            return calibrated.argmax(axis=1)
        return predict_at(calibrated, self.threshold)

    def as_dict(self) -> dict:
        return {"temperature": self.temperature, "threshold": self.threshold,
                "threshold_rule": self.rule, "positive_class": self.positive}

    @classmethod
    def from_dict(cls, data: dict | None) -> Decision:
        """The decision a run recorded; runs from before decisions existed used argmax."""
        if not data:
            return cls()
        temperature = float(data.get("temperature", 1.0))
        threshold = data.get("threshold")
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature {temperature!r} is not a positive number")
        if threshold is not None:
            threshold = float(threshold)
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold {threshold!r} is not a probability")
        return cls(temperature, threshold, data.get("threshold_rule"),
                   data.get("positive_class"))


def _between_scores(scores: np.ndarray, threshold: float) -> float:
    """Move a threshold that equals a validation score halfway down to the next lower score:
    the same calls on validation, and no image sits exactly on it."""
    below = scores[scores < threshold]
    return float((threshold + below.max()) / 2.0) if below.size else float(threshold / 2.0)


def choose_decision(val_probabilities: np.ndarray, val_targets: np.ndarray,
                    classes: list[str], rule: str = "youden") -> Decision:
    """Temperature (always) and threshold (two classes) fitted on validation."""
    temperature = fit_temperature(val_probabilities, val_targets)
    if len(classes) != 2:
        return Decision(temperature)
    scores = apply_temperature(val_probabilities, temperature)[:, 1]
    positive = np.asarray(val_targets) == 1
    threshold = choose_threshold(scores, positive, rule)
    return Decision(temperature, _between_scores(scores, threshold), rule, classes[1])


def report(probabilities: np.ndarray, targets: np.ndarray, classes: list[str],
           decision: Decision, groups=None, seed: int = 0,
           attributes: list[dict] | None = None) -> dict:
    """The numbers of one part under a frozen decision, with 95 % intervals (and per
    subgroup, when the images carry ``attributes``)."""
    targets = np.asarray(targets, dtype=np.int64)
    calibrated = decision.calibrate(probabilities)
    predicted = decision.call(calibrated)
    out = with_intervals(calibrated, targets, predicted, classes, groups, seed=seed)
    predicted_matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(predicted_matrix, (targets, predicted), 1)
    out.update({
        "count": int(len(targets)), "classes": list(classes),
        "loss": cross_entropy(calibrated, targets), "macro_f1": float(np.nanmean(
            [row["f1"] if row["f1"] is not None else np.nan
             for row in out["per_class"].values()])),
        "confusion_matrix": predicted_matrix.tolist(),
        "ece": ece(calibrated, targets), "ece_uncalibrated": ece(probabilities, targets),
        "reliability": reliability(calibrated, targets),
        "temperature": decision.temperature,
    })
    if decision.threshold is not None:
        positive = classes[1]
        row = out["per_class"][positive]
        out.update({"threshold": decision.threshold, "threshold_rule": decision.rule,
                    "positive_class": positive,
                    "sensitivity": row["sensitivity"], "sensitivity_ci": row["sensitivity_ci"],
                    "specificity": row["specificity"], "specificity_ci": row["specificity_ci"]})
        if len(set(targets.tolist())) == 2:
            out["curves"] = curves(calibrated[:, 1], targets == 1)
    if attributes:
        out["subgroups"] = subgroup_metrics(calibrated, targets, predicted, classes,
                                            attributes, groups, seed=seed)
    return out


def held_out(val_probabilities: np.ndarray, val_targets: np.ndarray,
             test_probabilities: np.ndarray | None, test_targets: np.ndarray | None,
             classes: list[str], rule: str = "youden", test_groups=None,
             val_groups=None, seed: int = 0, val_attributes=None,
             test_attributes=None) -> tuple[Decision, dict, dict | None]:
    """``(decision, validation report, test report or None)``."""
    try:
        decision = choose_decision(val_probabilities, val_targets, classes, rule)
    except ThresholdError as exc:
        raise ValueError(str(exc)) from exc
    val = report(val_probabilities, val_targets, classes, decision, val_groups, seed,
                 val_attributes)
    test = None
    if test_targets is not None and len(test_targets):
        test = report(test_probabilities, test_targets, classes, decision, test_groups, seed,
                      test_attributes)
    return decision, val, test
