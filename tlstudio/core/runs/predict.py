"""Predicting new images with a trained run, the same way validation saw them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...pixels import image_entries, image_key, parse_image_key
from ..data.images import ImageReadError, looks_like_image, read_image
from ..data.preprocess import Preprocessing, prepare
from ..engine.device import DeviceSetup, pick_device
from ..engine.inference import predict_with_features
from ..evaluation.explain import Explanation, explain_images, overlay
from .history import LoadedRun, load_run
from .record import RunError


@dataclass
class Prediction:
    path: str
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    frame: int | None = None  # one frame of a multi-frame DICOM (runs trained on all frames)
    ood: bool | None = None  # unlike anything the model was trained on (None: no detector)
    ood_score: float | None = None
    adapted_to: str | None = None  # the domain the run was adapted to (``tlstudio adapt``)
    adaptation: str | None = None  # its method, or that the source model was kept

    @property
    def key(self) -> str:
        return image_key(self.path, self.frame)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def as_dict(self) -> dict:
        data = {"path": self.path, "label": self.label, "probabilities": self.probabilities}
        if self.frame is not None:
            data["frame"] = self.frame
        if self.ood is not None:
            data["ood"], data["ood_score"] = self.ood, self.ood_score
        if self.adapted_to is not None:
            data["adapted_to"], data["adaptation"] = self.adapted_to, self.adaptation
        if self.error:
            data["error"] = self.error
        return data


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Images named directly, plus the images found recursively in named folders."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if parse_image_key(str(raw))[1] is not None:  # one frame, named by its key
            out.append(Path(str(raw)))
        elif path.is_dir():
            out.extend(
                sorted(f for f in path.rglob("*") if f.is_file() and looks_like_image(f)
                       and not any(part.startswith(".") for part in f.relative_to(path).parts))
            )
        else:
            out.append(path)
    return out


def entries_under(paths: list[str | Path], frames: str) -> list[tuple[Path, int | None]]:
    """Every image (file, frame) named by ``paths``: files, folders, frame keys; a run
    trained on every frame of a multi-frame DICOM sees each frame as an image."""
    return [entry for raw in paths for file in expand_paths([raw])
            for entry in image_entries(file, frames)]


def read_squares(entries: list[tuple[Path, int | None]], prep: Preprocessing,
                 ) -> Iterator[tuple[Path, int | None, np.ndarray | None, str | None]]:
    """Each image turned into the model's square by the one pixel rule, as
    ``(file, frame, square, None)``, or ``(file, frame, None, why)`` when it cannot be read."""
    for file, frame in entries:
        try:
            yield file, frame, prepare(read_image(file, prep.window, frame), prep), None
        except ImageReadError as exc:
            yield file, frame, None, str(exc)


class Predictor:
    """A loaded run ready to label images; unreadable files get an error, not an exception."""

    def __init__(self, run: LoadedRun, setup: DeviceSetup | None = None):
        self.run = run
        self.setup = setup or pick_device("auto")
        self.model = run.model.to(self.setup.device).eval()
        self.decision = run.decision  # the temperature and threshold validation chose
        self.ood = run.ood  # the out-of-distribution detector fitted with the run
        if self.ood is not None:
            self.ood.to(self.setup.device)

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto") -> Predictor:
        return cls(load_run(run_dir), pick_device(device))

    @property
    def classes(self) -> list[str]:
        return self.run.classes

    @property
    def domain(self) -> tuple[str | None, str | None]:
        """(the domain the run was adapted to, how) — (None, None) for a run as trained."""
        adapted = self.run.config.get("adapted")
        if not adapted:
            return None, None
        how = (adapted["method"] if adapted.get("kept", "adapted") == "adapted" else
               f"none: the source model was kept ({adapted.get('kept_because', 'see the run')})")
        return str(adapted["domain"]), how

    def probabilities(self, squares: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for prepared uint8 squares ``(N, S, S, 3)``: the
        validation path, then the run's temperature."""
        return self.answer(squares)[0]

    def answer(self, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Calibrated probabilities and out-of-distribution scores (None without a
        detector) for prepared squares, from one pass."""
        probs, features = predict_with_features(self.model, squares, self.run.preprocessing,
                                                self.setup, len(squares))
        scores = self.ood.scores(features) if self.ood is not None else None
        return self.decision.calibrate(probs), scores

    def predict(self, paths: list[str | Path], batch_size: int = 32,
                should_stop: Callable[[], None] | None = None) -> list[Prediction]:
        """``should_stop`` is called between batches and may raise to abandon the request.
        Paths may be files, folders or image keys (``file#frame=N``)."""
        prep = self.run.preprocessing
        entries = entries_under(paths, prep.frames)
        results: list[Prediction] = []
        for start in range(0, len(entries), batch_size):
            if should_stop is not None:
                should_stop()
            squares, ok = [], []
            for file, frame, square, error in read_squares(entries[start:start + batch_size],
                                                           prep):
                if error is None:
                    squares.append(square)
                    ok.append((file, frame))
                else:
                    results.append(Prediction(str(file), None, error=error, frame=frame))
            if ok:
                probs, scores = self.answer(np.stack(squares))
                calls = self.decision.call(probs)
                for k, ((file, frame), p, call) in enumerate(zip(ok, probs, calls,
                                                                 strict=True)):
                    result = Prediction(
                        str(file), self.classes[int(call)],
                        {c: float(v) for c, v in zip(self.classes, p, strict=True)},
                        frame=frame)
                    result.adapted_to, result.adaptation = self.domain
                    if scores is not None:
                        result.ood_score = float(scores[k])
                        result.ood = bool(self.ood.flags(scores[k:k + 1])[0])
                    results.append(result)
        order = {image_key(f, k): i for i, (f, k) in enumerate(entries)}
        return sorted(results, key=lambda r: order.get(r.key, 0))

    def explain(self, predictions: list[Prediction], class_name: str | None = None
                ) -> list[Explanation | None]:
        """Grad-CAM for each readable prediction: for the class the run called (its
        threshold applied) or for ``class_name``; None where the image had an error."""
        if class_name is not None and class_name not in self.classes:
            raise RunError(f"the run has no class '{class_name}'; its classes are "
                           f"{', '.join(self.classes)}")
        prep = self.run.preprocessing
        wanted = [r for r in predictions if not r.error]
        images = [read_image(r.path, prep.window, r.frame) for r in wanted]
        targets = [self.classes.index(class_name or r.label) for r in wanted]
        maps = iter(explain_images(self.model, images, prep, self.setup.device, targets))
        return [None if r.error else next(maps) for r in predictions]


def explanation_files(out_dir: str | Path, predictions: list[Prediction],
                      explanations: list[Explanation | None]) -> list[Path]:
    """``<stem>.heatmap.npy`` (float32 [0, 1], the original's H x W) and
    ``<stem>.overlay.png`` per explained image; frames get ``_frameN``, and a stem seen twice
    gets ``-2``, ``-3`` so no file overwrites another. Each file is written beside and renamed,
    so a stopped run leaves no half file."""
    import os

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for row, explanation in zip(predictions, explanations, strict=True):
        if explanation is None:
            continue
        stem = Path(row.path).stem + (f"_frame{row.frame}" if row.frame is not None else "")
        name, n = stem, 1
        while name in used or (out / f"{name}.heatmap.npy").exists():
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        heat_file, png_file = out / f"{name}.heatmap.npy", out / f"{name}.overlay.png"
        tmp = out / f".{name}.tmp.npy"
        np.save(tmp, explanation.heatmap)
        os.replace(tmp, heat_file)
        tmp_png = out / f".{name}.tmp.png"
        overlay(explanation.image, explanation.heatmap).save(tmp_png)
        os.replace(tmp_png, png_file)
        written += [heat_file, png_file]
    return written
