"""Labels that look wrong, and images that appear twice: the review queue.

Suspected label errors (confident learning, Northcutt et al. 2021, written here from the
paper's rule): every image gets out-of-fold class probabilities from the probe on frozen
features (cross-validation: no image is scored by a probe that saw its label; patients kept
together). Each class's threshold is the mean probability its own images give it. An image is
suspect when the likeliest class among those above their thresholds is not its label; its
score is (1 + p(that class) - p(its label)) / 2: 0.5 when the probe is torn, 1 when it is sure
of the other class.

Near-duplicates (features pointing the same way, cosine >= 0.99) are listed too: most
suspicious when the two carry different labels, then when they would fall in different parts
of a run's split (the same image in training and test: a leak), least when they are in the
same part with the same label (harmless but wasteful).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..data.dataset import DatasetIndex
from ..data.labels import LabelProject, image_id
from ..data.split import make_split
from ..engine.config import TrainConfig
from ..models.backbones import DEFAULT_BACKBONE
from .advisor import backbone_features, make_probe, probe_folds
from .embedding_map import near_duplicates

DUPLICATE_SCORES = {"different labels": 1.0, "different parts": 0.9, "same part": 0.2}


@dataclass
class Suspect:
    path: str
    label: str
    suggested_label: str
    score: float
    kind: str  # "label" | "duplicate"
    other: str | None = None  # the duplicate's twin
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def out_of_fold(features: np.ndarray, targets: np.ndarray, groups=None, folds: int = 5,
                seed: int = 0) -> np.ndarray:
    """Class probabilities of every image from a probe that did not see its label."""
    n_classes = int(targets.max()) + 1
    probs = np.zeros((len(targets), n_classes))
    for train, test in probe_folds(targets, groups, folds, seed):
        probe = make_probe().fit(features[train], targets[train])
        probs[np.ix_(test, probe.classes_)] = probe.predict_proba(features[test])
    return probs


def label_suspects(probs: np.ndarray, targets: np.ndarray) -> list[tuple[int, int, float]]:
    """``(position, suggested class, score)`` of every suspected label error, most suspect
    first."""
    n_classes = probs.shape[1]
    thresholds = np.array([probs[targets == c, c].mean() if (targets == c).any() else 1.0
                           for c in range(n_classes)])
    above = probs >= thresholds[None, :]
    out = []
    for i, given in enumerate(targets):
        if not above[i].any():
            continue
        candidate = int(np.argmax(np.where(above[i], probs[i], -1.0)))
        if candidate != given:
            out.append((i, candidate, float(1 + probs[i, candidate] - probs[i, given]) / 2))
    return sorted(out, key=lambda s: -s[2])


def review(index: DatasetIndex, features: np.ndarray, keep: np.ndarray | None = None,
           seed: int = 0, decided: set[str] = frozenset()) -> list[Suspect]:
    """Suspected label errors and near-duplicates of a labeled dataset, most suspicious
    first. ``features`` are the frozen features of ``index``'s images where ``keep`` is
    true; images in ``decided`` (kept or excluded in a review) are not listed again."""
    items = [item for item, k in zip(index.items, keep if keep is not None
                                     else np.ones(len(index.items), bool), strict=True) if k]
    targets = np.array([index.classes.index(item.label) for item in items])
    groups = [item.group for item in items] if index.has_groups else None
    found: list[Suspect] = []
    probs = out_of_fold(features, targets, groups, seed=seed)
    for i, suggested, score in label_suspects(probs, targets):
        found.append(Suspect(items[i].key, items[i].label, index.classes[suggested],
                             round(score, 4), "label",
                             note=f"the probe gives '{index.classes[suggested]}' "
                                  f"{probs[i, suggested]:.0%} and '{items[i].label}' "
                                  f"{probs[i, targets[i]]:.0%}"))
    part = _parts(index, keep)
    for a, b, similarity in near_duplicates(features):
        first, second = items[a], items[b]
        if first.label != second.label:
            why = "different labels"
        elif part.get(first.key) != part.get(second.key):
            why = "different parts"
        else:
            why = "same part"
        where = (f"in {part.get(first.key)} and {part.get(second.key)} of a run's split: "
                 "the same image on both sides (a leak)"
                 if why == "different parts" else why)
        found.append(Suspect(first.key, first.label, second.label,
                             round(DUPLICATE_SCORES[why] * similarity, 4), "duplicate",
                             other=second.key,
                             note=f"near-duplicate of {second.path.name} (similarity "
                                  f"{similarity:.3f}; {where})"))
    decided = {image_id(d) for d in decided}
    found = [s for s in found if not {image_id(s.path), image_id(s.other or s.path)} & decided]
    return sorted(found, key=lambda s: -s.score)


def review_dataset(index: DatasetIndex, backbone: str = DEFAULT_BACKBONE, device: str = "auto",
                   window: str = "file", seed: int = 0, emit=lambda e: None, control=None
                   ) -> list[Suspect]:
    """What ``tlstudio review`` and the studio's review queue list: :func:`review` on the
    backbone's frozen features, leaving out what an earlier review of this dataset decided."""
    features, keep, _ = backbone_features(index, backbone, device, emit, control,
                                          window=window)
    project = LabelProject.find_for_dataset(index.root)
    return review(index, features, keep, seed, project.decided() if project else set())


def _parts(index: DatasetIndex, keep) -> dict[str, str]:
    """Which part (train/val/test) each image falls in with a run's default split."""
    defaults = TrainConfig()
    try:
        split = make_split(index, defaults.val_fraction, defaults.test_fraction,
                           defaults.seed)
    except Exception:  # noqa: BLE001 - too small to split: no part is known
        return {}
    return {index.items[p].key: name for name, positions in split.as_dict().items()
            for p in positions}
