"""The operating point of a two-class model: which probability of the positive class calls it.

Validation chooses the threshold (Youden's J, or the highest threshold that still reaches a
sensitivity, or the lowest that reaches a specificity, the user asks for); the test part then
reports what that threshold gives. The threshold travels with the run: predict, the studio
and the export call a case positive at ``p >= threshold``.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

RULES = ("youden", "sensitivity", "specificity")


class ThresholdError(ValueError):
    """A threshold rule that cannot be applied (unknown rule, target out of range, one class)."""


def parse_rule(text: str) -> tuple[str, float | None]:
    """``youden``, ``sensitivity=0.95`` or ``specificity=0.9``."""
    name, _, value = str(text).strip().lower().partition("=")
    if name == "youden" and not value:
        return "youden", None
    if name in ("sensitivity", "specificity"):
        try:
            target = float(value)
        except ValueError:
            target = float("nan")
        if not 0.0 < target <= 1.0:
            raise ThresholdError(f"threshold rule '{text}': give the target as a number above "
                                 "0 and at most 1, e.g. sensitivity=0.95")
        return name, target
    raise ThresholdError(f"threshold rule '{text}': use youden, sensitivity=S or "
                         "specificity=S")


def curves(scores: np.ndarray, positive: np.ndarray) -> dict:
    """ROC and precision-recall curves, as lists for JSON and plots."""
    fpr, tpr, roc_thresholds = roc_curve(positive, scores)
    precision, recall, pr_thresholds = precision_recall_curve(positive, scores)
    return {"roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist(),
                    "thresholds": np.clip(roc_thresholds, 0.0, 1.0).tolist()},
            "pr": {"precision": precision.tolist(), "recall": recall.tolist(),
                   "thresholds": pr_thresholds.tolist()}}


def choose_threshold(scores: np.ndarray, positive: np.ndarray, rule: str = "youden") -> float:
    """The validation threshold on ``scores`` (probability of the positive class)."""
    name, target = parse_rule(rule)
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        raise ThresholdError("the validation part holds only one class; no threshold can be "
                             "chosen on it")
    candidates = np.unique(scores)[::-1]  # every distinct score, highest first
    sens = np.array([(scores[positive] >= t).mean() for t in candidates])
    spec = np.array([(scores[~positive] < t).mean() for t in candidates])
    if name == "youden":
        return float(candidates[int(np.argmax(sens + spec - 1.0))])
    if name == "sensitivity":
        reached = np.nonzero(sens >= target - 1e-12)[0]
        return float(candidates[reached[0]])  # the highest threshold that still reaches it
    reached = np.nonzero(spec >= target - 1e-12)[0]
    return float(candidates[reached[-1]])  # the lowest threshold that still reaches it


def predict_at(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Class 1 where its probability is at least the threshold, else class 0."""
    return (np.asarray(probabilities)[:, 1] >= threshold).astype(np.int64)
