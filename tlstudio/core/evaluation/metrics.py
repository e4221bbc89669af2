"""Evaluation: the numbers a user reads after training, computed from predictions."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)


def cross_entropy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    p = probabilities[np.arange(len(targets)), targets]
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean()) if len(targets) else float("nan")


def evaluate(probabilities: np.ndarray, targets: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, loss, per-class precision/recall/F1, confusion matrix (rows = true class)."""
    targets = np.asarray(targets, dtype=np.int64)
    predicted = probabilities.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        targets, predicted, labels=labels, zero_division=0
    )
    result = {
        "accuracy": float(accuracy_score(targets, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(targets, predicted)),
        "loss": cross_entropy(probabilities, targets),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(targets, predicted, labels=labels).tolist(),
        "classes": list(classes),
        "count": int(len(targets)),
    }
    if len(classes) == 2 and len(set(targets.tolist())) == 2:
        result["roc_auc"] = float(roc_auc_score(targets, probabilities[:, 1]))
    return result
