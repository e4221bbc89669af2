"""Which image to label next: a probe on frozen features, asked where it is least sure.

Once each of two classes has a few labels (``MIN_PER_CLASS``), a logistic-regression probe on
the backbone's frozen features (seconds) scores every unlabeled image. The next images are the
ones it is least sure of (smallest margin between its two likeliest classes), spread over the
feature space: the most uncertain images are clustered (k-means, weighted by uncertainty) and
the most uncertain image of each cluster is proposed, so ten near-copies are never asked for
in a row (diverse mini-batch active learning, Zhdanov 2019). Before the probe can run, images
are proposed for coverage alone (the cluster centres of all images). Each proposal carries the
probe's guess, which the studio pre-fills.

The learning curve (cross-validated accuracy against the number of labels) tells when more
labels stop paying.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.labels import image_id
from .advisor import make_probe

MIN_PER_CLASS = 2  # labels in each of two classes before the probe proposes and guesses
POOL = 3  # uncertain candidates considered per image proposed (BENCHMARKS.md)


@dataclass
class Suggestion:
    position: int  # into the features given
    score: float  # uncertainty in [0, 1] (1: a coin toss); 0 before the probe can run
    suggested: int | None  # class index guessed by the probe


def _unit(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


class LabelModel:
    """The probe on the labels so far. ``labeled`` maps a position to its class index."""

    def __init__(self, features: np.ndarray, labeled: dict[int, int], n_classes: int,
                 seed: int = 0):
        self.features = np.asarray(features, dtype=np.float32)
        self.labeled = dict(labeled)
        self.n_classes = n_classes
        self.seed = seed
        counts = np.bincount(list(self.labeled.values()), minlength=n_classes)
        self.ready = int((counts >= MIN_PER_CLASS).sum()) >= 2
        self.probe = None
        if self.ready:
            positions = np.array(sorted(self.labeled))
            self.probe = make_probe()
            self.probe.fit(self.features[positions],
                           np.array([self.labeled[p] for p in positions]))

    def unlabeled(self) -> np.ndarray:
        return np.array([p for p in range(len(self.features)) if p not in self.labeled],
                        dtype=int)

    def probabilities(self, positions) -> np.ndarray:
        """Class probabilities (all classes; a class with no label yet gets 0)."""
        positions = np.asarray(positions, dtype=int)
        out = np.zeros((len(positions), self.n_classes))
        if self.probe is None or not len(positions):
            return out
        out[:, self.probe.classes_] = self.probe.predict_proba(self.features[positions])
        return out

    def suggest(self, n: int = 10) -> list[Suggestion]:
        """The next ``n`` images to label, best first."""
        pool = self.unlabeled()
        n = min(n, len(pool))
        if n <= 0:
            return []
        if not self.ready:
            picks = _spread(_unit(self.features[pool]), np.ones(len(pool)), n, self.seed)
            return [Suggestion(int(pool[k]), 0.0, None) for k in picks]
        probs = self.probabilities(pool)
        top2 = np.sort(probs, axis=1)[:, -2:]
        uncertainty = 1.0 - (top2[:, 1] - top2[:, 0])
        order = np.argsort(-uncertainty, kind="stable")[:max(n * POOL, n)]
        picks = _spread(_unit(self.features[pool[order]]), uncertainty[order], n, self.seed)
        chosen = sorted((order[k] for k in picks), key=lambda k: -uncertainty[k])
        return [Suggestion(int(pool[k]), float(uncertainty[k]), int(probs[k].argmax()))
                for k in chosen]

    def learning_curve(self, folds: int = 5) -> list[tuple[int, float, float]]:
        """(labels trained on, mean accuracy, SD) at a few sizes up to the labels so far,
        each scored on held-out labels by cross-validation."""
        from sklearn.model_selection import StratifiedKFold, learning_curve

        if not self.ready:
            return []
        positions = np.array(sorted(self.labeled))
        y = np.array([self.labeled[p] for p in positions])
        present = np.bincount(y)
        present = present[present > 0]
        folds = max(2, min(folds, int(present.min())))
        if len(positions) < 2 * folds or len(present) < 2:
            return []
        largest = len(positions) - len(positions) // folds
        smallest = min(largest, max(2 * len(present), 4))
        sizes = np.unique(np.geomspace(smallest, largest, num=6).round().astype(int))
        with warnings.catch_warnings():  # a small subset with one class: scored NaN, left out
            warnings.simplefilter("ignore")
            sizes, _, test_scores = learning_curve(
                make_probe(), self.features[positions], y, train_sizes=sizes,
                cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
                shuffle=True, random_state=self.seed, error_score=np.nan)
        return [(int(s), float(np.nanmean(t)), float(np.nanstd(t)))
                for s, t in zip(sizes, test_scores, strict=True) if np.isfinite(t).any()]


def _spread(unit: np.ndarray, weight: np.ndarray, n: int, seed: int) -> list[int]:
    """``n`` rows of ``unit``, one per k-means cluster, the heaviest of each cluster."""
    if n >= len(unit):
        return list(range(len(unit)))
    from sklearn.cluster import KMeans

    labels = KMeans(n_clusters=n, n_init=3, random_state=seed).fit_predict(
        unit, sample_weight=np.maximum(weight, 1e-6))
    picks = []
    for cluster in range(n):
        members = np.nonzero(labels == cluster)[0]
        if len(members):
            picks.append(int(members[np.argmax(weight[members])]))
    return picks


def simulate(features: np.ndarray, targets: np.ndarray, strategy: str, seed: int,
             budget: int = 60, step: int = 10, start: int = 10, test_fraction: float = 0.3
             ) -> list[tuple[int, float]]:
    """Label a dataset whose labels are known, ``step`` images a round, as a user would:
    (labels so far, probe accuracy on a held-out part) after each round. ``strategy`` is
    "uncertainty" (this module's proposals) or "random". The start (``start`` images, every
    class present) and the held-out part are the same for both strategies with one seed."""
    from sklearn.model_selection import train_test_split

    targets = np.asarray(targets)
    positions = np.arange(len(targets))
    pool, test = train_test_split(positions, test_size=test_fraction, stratify=targets,
                                  random_state=seed)
    first, _ = train_test_split(pool, train_size=start, stratify=targets[pool],
                                random_state=seed)
    rng = np.random.default_rng(seed)
    labeled = {int(p): int(targets[p]) for p in first}
    n_classes = int(targets.max()) + 1
    curve = []
    while True:
        model = LabelModel(features, labeled, n_classes, seed)  # trained on the labels only
        curve.append((len(labeled), float(
            (model.probabilities(test).argmax(1) == targets[test]).mean())))
        if len(labeled) >= budget:
            return curve
        take = min(step, budget - len(labeled))
        if strategy == "random":
            new = rng.choice([int(p) for p in pool if int(p) not in labeled], size=take,
                             replace=False)
        else:  # proposals from the pool alone: the held-out images are never asked for
            local = LabelModel(features[pool], {k: labeled[int(p)] for k, p in enumerate(pool)
                                                if int(p) in labeled}, n_classes, seed)
            new = [int(pool[s.position]) for s in local.suggest(take)]
        for p in new:
            labeled[int(p)] = int(targets[p])


@dataclass
class FolderFeatures:
    """The frozen features of a folder's images (those that decode), in file order."""

    paths: list[Path]
    features: np.ndarray
    unreadable: list[Path]

    @classmethod
    def compute(cls, files: list[Path], backbone: str, device: str = "auto",
                window: str = "file", emit=lambda e: None, control=None) -> FolderFeatures:
        from .advisor import image_features

        features, keep, _ = image_features([(f, None) for f in files], backbone, device, emit,
                                           control, window=window)
        kept = [f for f, k in zip(files, keep, strict=True) if k]
        return cls(kept, features, [f for f, k in zip(files, keep, strict=True) if not k])

    def model(self, labels: dict[str, str], classes: list[str], seed: int = 0) -> LabelModel:
        """The probe on ``labels`` (absolute path -> class) of these images."""
        position = {image_id(p): k for k, p in enumerate(self.paths)}
        labeled = {position[key]: classes.index(label) for key, label in labels.items()
                   if key in position and label in classes}
        return LabelModel(self.features, labeled, len(classes), seed)

    def suggestions(self, labels: dict[str, str], classes: list[str], n: int = 10,
                    seed: int = 0, model: LabelModel | None = None) -> list[dict]:
        """The next images to label, best first: ``path``, ``score``, ``suggested_label``
        (``model``: the probe already fitted on these labels, else fitted here)."""
        model = model or self.model(labels, classes, seed)
        return [{"path": str(self.paths[s.position]), "score": round(s.score, 4),
                 "suggested_label": None if s.suggested is None else classes[s.suggested]}
                for s in model.suggest(n)]
