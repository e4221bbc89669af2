"""Do the probabilities mean what they say? ECE, a reliability diagram, temperature scaling.

A model that says 95 % should be right about 95 % of the time. Temperature scaling divides the
log-probabilities by one number T fitted on the validation part (never the test part), which
keeps every ranking and every argmax and only makes the probabilities honest.
"""

from __future__ import annotations

import numpy as np

BINS = 15


def _safe_log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 softens over-confident probabilities, T = 1 changes nothing."""
    logits = _safe_log(probabilities) / float(temperature)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def nll(probabilities: np.ndarray, targets: np.ndarray) -> float:
    targets = np.asarray(targets, dtype=np.int64)
    return float(-_safe_log(probabilities)[np.arange(len(targets)), targets].mean())


def fit_temperature(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """The T in [0.2, 20] with the lowest validation negative log-likelihood (a search on
    log T: coarse grid, then golden section around the best point). The lower bound keeps a
    small validation part that happens to be perfectly separated (whose likelihood only grows
    as T shrinks) from making every probability 0 or 1."""
    if len(targets) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(0.2), np.log(20.0), 61))
    losses = [nll(apply_temperature(probabilities, t), targets) for t in grid]
    best = int(np.argmin(losses))
    low, high = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(40):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if nll(apply_temperature(probabilities, np.exp(a)), targets) <= \
                nll(apply_temperature(probabilities, np.exp(b)), targets):
            high = b
        else:
            low = a
    return float(np.exp((low + high) / 2.0))


def reliability(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> list[dict]:
    """Per confidence bin (top-class probability): mean confidence, accuracy, images."""
    targets = np.asarray(targets, dtype=np.int64)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        if inside.any():
            out.append({"low": float(edges[b]), "high": float(edges[b + 1]),
                        "confidence": float(confidence[inside].mean()),
                        "accuracy": float(correct[inside].mean()), "count": int(inside.sum())})
    return out


def ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the images-weighted gap between confidence and accuracy."""
    rows = reliability(probabilities, targets, bins)
    total = sum(r["count"] for r in rows)
    if total == 0:
        return float("nan")
    return float(sum(r["count"] * abs(r["confidence"] - r["accuracy"]) for r in rows) / total)
