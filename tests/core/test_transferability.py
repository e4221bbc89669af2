"""LogME: agrees with the evidence written out with matrices, and ranks features that carry
the labels above features that do not."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.evaluation import transferability as t


@pytest.mark.parametrize("n,d", [(40, 7), (20, 60)])  # more images than features, and fewer
def test_logme_matches_the_evidence_computed_directly(n, d):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, d))
    labels = (features[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(int)
    u, s, _ = np.linalg.svd(features, full_matrices=False)
    for cls in (0, 1):
        target = (labels == cls).astype(float)
        per_image, alpha, beta = t._fit_one(s ** 2, u.T @ target, float(target @ target), n, d)
        direct = t.log_evidence_direct(features, target, alpha, beta)
        assert per_image * n == pytest.approx(direct, rel=1e-8, abs=1e-8)
        # and it is a maximum: nudging alpha or beta does not raise the evidence (beyond the
        # flat ridge where, with more features than images, the targets are fitted exactly)
        for a, b in ((alpha * 1.5, beta), (alpha / 1.5, beta), (alpha, beta * 1.5),
                     (alpha, beta / 1.5)):
            assert t.log_evidence_direct(features, target, a, b) < direct + 1e-6 * abs(direct)
    both = [t._fit_one(s ** 2, u.T @ (labels == c).astype(float),
                       float((labels == c).sum()), n, d)[0] for c in (0, 1)]
    assert t.logme(features, labels) == pytest.approx(np.mean(both))


def test_informative_features_score_above_random_ones():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    centres = rng.normal(size=(3, 64)) * 2.0
    informative = centres[labels] + rng.normal(size=(300, 64))
    random = rng.normal(size=(300, 64))
    assert t.logme(informative, labels) > t.logme(random, labels) + 0.1


def test_bad_features_are_refused():
    with pytest.raises(ValueError, match="NaN"):
        t.logme(np.array([[0.0, np.nan], [1.0, 2.0]]), np.array([0, 1]))
    with pytest.raises(ValueError, match="one label per row"):
        t.logme(np.zeros((3, 2)), np.array([0, 1]))
