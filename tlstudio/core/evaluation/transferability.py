"""How well a backbone's frozen features suit a labelled dataset, in seconds.

LogME (You et al., 2021): for each class, the targets (1 for the class, 0 otherwise) are
explained by a Bayesian linear model on the features, ``y = F w + noise`` with a Gaussian
prior of precision ``alpha`` on ``w`` and noise of precision ``beta``. Both are set by
maximising the marginal likelihood (the evidence) with MacKay's fixed-point updates; the
score is the maximised log evidence per image, averaged over classes. Higher means the
features already carry the labels in a form a linear head can use; no training, no tuning.

One SVD of the features serves every class and every iteration, so a few hundred images with
a thousand features take milliseconds.
"""

from __future__ import annotations

import numpy as np

ITERATIONS = 100
TOLERANCE = 1e-4


def _evidence_terms(s2: np.ndarray, z: np.ndarray, y_norm2: float, alpha: float,
                    beta: float, n: int, d: int) -> float:
    """Log evidence from the SVD quantities (``s2``: squared singular values of F, ``z``:
    the targets projected on F's left singular vectors)."""
    denom = alpha + beta * s2
    residual = float(np.sum((alpha * z / denom) ** 2) + y_norm2 - np.sum(z ** 2))
    weights = float(np.sum((beta * np.sqrt(s2) * z / denom) ** 2))
    log_det = float(np.sum(np.log(denom)) + (d - len(s2)) * np.log(alpha))
    return (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
            - beta / 2 * residual - alpha / 2 * weights - log_det / 2)


def _fit_one(s2: np.ndarray, z: np.ndarray, y_norm2: float, n: int, d: int
             ) -> tuple[float, float, float]:
    """(log evidence / n, alpha, beta) at the fixed point."""
    alpha, beta = 1.0, 1.0
    for _ in range(ITERATIONS):
        denom = alpha + beta * s2
        gamma = float(np.sum(beta * s2 / denom))
        weights = float(np.sum((beta * np.sqrt(s2) * z / denom) ** 2))
        residual = float(np.sum((alpha * z / denom) ** 2) + y_norm2 - np.sum(z ** 2))
        new_alpha = gamma / max(weights, 1e-12)
        new_beta = max(n - gamma, 1e-12) / max(residual, 1e-12)
        done = abs(new_alpha - alpha) / alpha < TOLERANCE and \
            abs(new_beta - beta) / beta < TOLERANCE
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return _evidence_terms(s2, z, y_norm2, alpha, beta, n, d) / n, alpha, beta


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME of ``features`` (n, d) for integer ``labels`` (n,): mean over classes of the
    maximised log evidence per image."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or len(f) != len(y) or len(f) < 2:
        raise ValueError("LogME needs a 2-D feature matrix with one label per row")
    if not np.isfinite(f).all():
        raise ValueError("the features hold NaN or infinity")
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    keep = s > s.max() * 1e-10 if s.size else s.astype(bool)
    u, s2 = u[:, keep], s[keep] ** 2
    scores = []
    for cls in np.unique(y):
        target = (y == cls).astype(np.float64)
        z = u.T @ target
        scores.append(_fit_one(s2, z, float(target @ target), n, d)[0])
    return float(np.mean(scores))


def log_evidence_direct(features: np.ndarray, target: np.ndarray, alpha: float,
                        beta: float) -> float:
    """The log evidence written out with matrices (for checking the SVD path): the log
    density of ``target`` under ``N(0, I / beta + F F^T / alpha)``."""
    f = np.asarray(features, dtype=np.float64)
    n = len(f)
    cov = np.eye(n) / beta + f @ f.T / alpha
    _, log_det = np.linalg.slogdet(cov)
    return float(-0.5 * (n * np.log(2 * np.pi) + log_det
                         + target @ np.linalg.solve(cov, target)))
