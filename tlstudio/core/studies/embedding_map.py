"""A 2-D map of a run's images as its model sees them, to find what the numbers hide.

Every image of the run's split goes through the trained model once (evaluation crop): its
penultimate features place it, its answer (the run's temperature and threshold applied)
says whether the model gets it right. The features are reduced to 50 dimensions by PCA and
laid out in 2-D by t-SNE (or PCA alone, ``method="pca"``): images the model finds alike land
close together. Clusters of one class far from the rest, mistakes inside the wrong cluster and
labels that sit amid another class show up at a glance. Near-duplicates (cosine similarity of
the features of at least ``DUPLICATE``) are paired; a pair split between training and
validation or test is leakage, and said so.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ...errors import UserError
from ..data.cache import ImageCache, decode_images
from ..data.dataset import scan
from ..engine.device import pick_device
from ..engine.events import Control, StageProgress
from ..engine.inference import predict_with_features
from ..runs.history import load_run
from ..runs.record import SPLIT

DUPLICATE = 0.99
MAX_POINTS = 5000
METHODS = ("tsne", "pca")


def embedding_map(run_dir: str | Path, method: str = "tsne", device: str = "auto",
                  emit: Callable = lambda e: None, control: Control | None = None,
                  seed: int = 0) -> dict:
    """``{"method", "points": [...], "duplicates": [...], "left_out"}`` for a finished run."""
    import json

    if method not in METHODS:
        raise UserError(f"--method must be one of {', '.join(METHODS)}, not '{method}'")
    control = control or Control()
    run = load_run(run_dir)
    split = json.loads((Path(run_dir) / SPLIT).read_text(encoding="utf-8"))
    emit(StageProgress("reading the images", 0, 1))
    prep = run.preprocessing
    root = run.config["dataset"]["root"]
    try:
        index = scan(root, prep=prep, cache=ImageCache())
    except (OSError, UserError) as exc:
        raise UserError(f"the run's images at '{root}' cannot be read now ({exc})") from exc
    items = {item.key: item for item in index.items}
    rows = [(key, part) for part in ("train", "val", "test") for key in split.get(part, [])
            if key in items]
    missing = sum(len(v) for v in split.values()) - len(rows)
    if len(rows) > MAX_POINTS:
        pick = np.sort(np.random.default_rng(seed).permutation(len(rows))[:MAX_POINTS])
        rows = [rows[i] for i in pick]
    if len(rows) < 3:
        raise UserError("fewer than three of the run's images can be read: no map to draw")
    chosen = [items[key] for key, _ in rows]
    squares, failures = decode_images(
        [(i.path, i.frame) for i in chosen], prep, check=control.checkpoint, cache=ImageCache(),
        progress=lambda d, t: emit(StageProgress("reading the images", d, t)))
    keep = [k for k in range(len(chosen)) if k not in failures]
    setup = pick_device(device)
    emit(StageProgress("features", 0, 1))
    probs, features = predict_with_features(run.model.to(setup.device), squares[keep], prep,
                                            setup, 32, control)
    emit(StageProgress("features", 1, 1))
    predicted = run.decision.call(run.decision.calibrate(probs))
    emit(StageProgress(f"laying out ({method})", 0, 1))
    xy = layout(features, method, seed)
    emit(StageProgress(f"laying out ({method})", 1, 1))
    points = []
    for j, k in enumerate(keep):
        key, part = rows[k]
        label, call = chosen[k].label, run.classes[int(predicted[j])]
        points.append({"path": key, "label": label, "part": part, "predicted": call,
                       "correct": label == call, "x": float(xy[j, 0]), "y": float(xy[j, 1])})
    pairs = near_duplicates(features)
    duplicates = [{"a": points[a]["path"], "b": points[b]["path"], "similarity": s,
                   "parts": [points[a]["part"], points[b]["part"]],
                   "leak": points[a]["part"] != points[b]["part"]} for a, b, s in pairs]
    return {"run": str(run_dir), "method": method, "points": points,
            "duplicates": duplicates, "left_out": missing + len(failures)}


def layout(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D coordinates: PCA to 50 dimensions, then t-SNE (or the first two components)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    f = np.asarray(features, dtype=np.float64)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    reduced = PCA(n_components=min(50, *f.shape), random_state=seed).fit_transform(f)
    if method == "pca" or len(f) < 5:
        return reduced[:, :2] if reduced.shape[1] >= 2 else np.c_[reduced, np.zeros(len(f))]
    perplexity = float(min(30.0, (len(f) - 1) / 3.0))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(reduced)


def near_duplicates(features: np.ndarray, threshold: float = DUPLICATE
                    ) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, similarity)`` of images whose features point the same way."""
    f = np.asarray(features, dtype=np.float32)
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    out = []
    for start in range(0, len(f), 1024):  # blocks: bounded memory for large runs
        sims = f[start:start + 1024] @ f.T
        for i, j in zip(*np.nonzero(sims >= threshold), strict=True):
            a = start + int(i)
            if a < int(j):
                out.append((a, int(j), float(sims[i, j])))
    return sorted(out, key=lambda p: -p[2])
