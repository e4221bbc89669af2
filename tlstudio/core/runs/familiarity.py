"""The run's out-of-distribution detector: fitted when training ends, saved beside the best
weights as ``ood.safetensors``, loaded with the run by Predict, ``predict`` and export.

Fitted on the final model's penultimate features of the training images (evaluation crop;
at most ``FIT_IMAGES`` of them), thresholded on the validation part, and checked on the
held-out test part: ``metrics.json`` says what share of in-domain images it flags.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from ..engine.inference import predict_with_features
from ..evaluation.ood import QUANTILE, OodDetector, fit_detector
from .record import RunError, save_tensors_atomic

OOD = "ood.safetensors"
FIT_IMAGES = 2000  # enough for a shrunk covariance; bounds the extra pass on large data
CHUNK = 256  # images copied out of the store at once while fitting


def fit_for_run(model, prepared, prep, setup, batch_size: int, seed: int,
                val_features: np.ndarray, test_features: np.ndarray | None
                ) -> tuple[OodDetector, dict]:
    """The detector and its summary for metrics.json."""
    images, targets = prepared.data.train_images, prepared.data.train_targets
    rows = np.arange(len(targets))
    if len(targets) > FIT_IMAGES:
        rows = np.sort(np.random.default_rng(seed).permutation(len(targets))[:FIT_IMAGES])
        targets = targets[rows]
    # a few hundred images copied out of the (possibly memory-mapped) store at a time, not
    # all FIT_IMAGES at once (about 400 MB at 256 px)
    chunks = [predict_with_features(model, images[rows[start : start + CHUNK]], prep, setup,
                                    batch_size)[1]
              for start in range(0, len(rows), CHUNK)]
    train_features = np.concatenate(chunks) if chunks else np.zeros((0, 0), np.float32)
    detector = fit_detector(train_features, targets, val_features)
    summary = {
        "method": "Mahalanobis distance to the nearest class mean, unit-length penultimate "
                  "features, shared Ledoit-Wolf covariance",
        "threshold": float(detector.threshold),
        "threshold_rule": f"{QUANTILE:.0%} of validation images score below it",
        "fitted_on": int(len(targets)),
        "validation_flagged": float(detector.flags(detector.scores(val_features)).mean()),
    }
    if test_features is not None and len(test_features):
        summary["test_flagged"] = float(detector.flags(detector.scores(test_features)).mean())
    return detector, summary


def held_out_flagged(summary: dict) -> float:
    """The share of held-out images metrics.json's ``ood`` block says were flagged (the test
    part, else validation)."""
    return summary.get("test_flagged", summary["validation_flagged"])


def save(run_dir: Path, detector: OodDetector) -> None:
    save_tensors_atomic(Path(run_dir) / OOD, detector.tensors())


def load(run_dir: Path) -> OodDetector | None:
    """The run's detector, or None for runs made before it existed."""
    path = Path(run_dir) / OOD
    if not path.is_file():
        return None
    try:
        return OodDetector.from_tensors(load_file(str(path)))
    except Exception as exc:  # safetensors' own error types, or our ValueError
        raise RunError(f"{path} is damaged ({exc}); train the run again or delete the file "
                       "to predict without the out-of-distribution warning") from exc
