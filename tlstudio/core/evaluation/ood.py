"""Out-of-distribution warning: is this image unlike anything the model was trained on?

A classifier answers one of its classes for any picture, a chest X-ray given to a brain-MRI
model included, often with high confidence. The detector looks at the model's own penultimate
features instead: each training image's feature vector, scaled to unit length, per class a
mean, and one shared covariance (shrunk towards a diagonal, Ledoit-Wolf, since a few hundred
images cannot estimate a 1,280-dimensional covariance). An image's score is its smallest
Mahalanobis distance to a class mean (Lee et al. 2018). The threshold is set on the
validation images, which the detector never fitted: the validation score that only about
``1 - QUANTILE`` of them exceed, so about one in-domain image in a hundred is flagged.

The detector is a torch module: it runs inside the exported model too (its second output,
``ood_score``), so the app, ``predict`` and the exported runtime flag the same images.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

QUANTILE = 0.99
WARNING = "unlike anything this model was trained on"


class OodDetector(nn.Module):
    """Penultimate features -> distance to the nearest class (larger: less familiar)."""

    def __init__(self, means: torch.Tensor, precision: torch.Tensor, threshold: float):
        super().__init__()
        self.register_buffer("means", means.float())
        self.register_buffer("precision", precision.float())
        self.register_buffer("threshold", torch.tensor(float(threshold)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        f = nn.functional.normalize(features.float(), dim=1)
        diff = f[:, None, :] - self.means[None, :, :]  # (N, C, D)
        distance = torch.einsum("ncd,de,nce->nc", diff, self.precision, diff)
        return distance.clamp_min(0).min(dim=1).values.sqrt()

    def scores(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(features), dtype=torch.float32)
            return self(x.to(self.means.device)).cpu().numpy()

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) > float(self.threshold)

    # --- saving with the run ---------------------------------------------------------------
    def tensors(self) -> dict[str, torch.Tensor]:
        return {"means": self.means.cpu().contiguous(),
                "precision": self.precision.cpu().contiguous(),
                "threshold": self.threshold.cpu().reshape(1)}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> OodDetector:
        means, precision = tensors["means"], tensors["precision"]
        threshold = float(tensors["threshold"].reshape(-1)[0])
        if (means.ndim != 2 or precision.shape != (means.shape[1], means.shape[1])
                or not torch.isfinite(means).all() or not torch.isfinite(precision).all()
                or not np.isfinite(threshold)):
            raise ValueError("the out-of-distribution detector's file is damaged")
        return cls(means, precision, threshold)


def fit_detector(train_features: np.ndarray, train_targets: np.ndarray,
                 val_features: np.ndarray, quantile: float = QUANTILE) -> OodDetector:
    """Fit on training features, set the threshold on validation features."""
    from sklearn.covariance import LedoitWolf

    f = _unit(train_features)
    classes = np.unique(train_targets)
    means = np.stack([f[train_targets == c].mean(axis=0) for c in classes])
    centred = f - means[np.searchsorted(classes, train_targets)]
    precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    detector = OodDetector(torch.from_numpy(means), torch.from_numpy(precision), 0.0)
    val_scores = detector.scores(val_features)
    # an observed score at or above the quantile: on a small validation part it is the
    # largest, so no validation image is flagged by construction of its own threshold
    threshold = (float(np.quantile(val_scores, quantile, method="higher")) if len(val_scores)
                 else float("inf"))
    detector.threshold.fill_(threshold)
    return detector


def _unit(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
