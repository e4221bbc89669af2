"""Predicting new images with a trained run, the same way validation saw them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...pixels import image_entries, image_key, parse_image_key
from ..data.images import ImageReadError, looks_like_image, read_image
from ..data.preprocess import prepare
from ..engine.device import DeviceSetup, pick_device
from ..engine.inference import predict_squares
from .history import LoadedRun, load_run


@dataclass
class Prediction:
    path: str
    label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    frame: int | None = None  # one frame of a multi-frame DICOM (runs trained on all frames)

    @property
    def key(self) -> str:
        return image_key(self.path, self.frame)

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return sorted(self.probabilities.items(), key=lambda kv: -kv[1])[:k]

    def as_dict(self) -> dict:
        data = {"path": self.path, "label": self.label, "probabilities": self.probabilities}
        if self.frame is not None:
            data["frame"] = self.frame
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


class Predictor:
    """A loaded run ready to label images; unreadable files get an error, not an exception."""

    def __init__(self, run: LoadedRun, setup: DeviceSetup | None = None):
        self.run = run
        self.setup = setup or pick_device("auto")
        self.model = run.model.to(self.setup.device).eval()

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str = "auto") -> Predictor:
        return cls(load_run(run_dir), pick_device(device))

    @property
    def classes(self) -> list[str]:
        return self.run.classes

    def probabilities(self, squares: np.ndarray) -> np.ndarray:
        """Probabilities for prepared uint8 squares ``(N, S, S, 3)``: the validation path."""
        return predict_squares(self.model, squares, self.run.preprocessing, self.setup,
                               len(squares))

    def predict(self, paths: list[str | Path], batch_size: int = 32,
                should_stop: Callable[[], None] | None = None) -> list[Prediction]:
        """``should_stop`` is called between batches and may raise to abandon the request.
        Paths may be files, folders or image keys (``file#frame=N``)."""
        prep = self.run.preprocessing
        entries = [entry for raw in paths for file in expand_paths([raw])
                   for entry in image_entries(file, prep.frames)]
        results: list[Prediction] = []
        for start in range(0, len(entries), batch_size):
            if should_stop is not None:
                should_stop()
            squares, ok = [], []
            for file, frame in entries[start : start + batch_size]:
                try:
                    squares.append(prepare(read_image(file, prep.window, frame), prep))
                    ok.append((file, frame))
                except ImageReadError as exc:
                    results.append(Prediction(str(file), None, error=str(exc), frame=frame))
            if ok:
                probs = self.probabilities(np.stack(squares))
                for (file, frame), p in zip(ok, probs, strict=True):
                    results.append(Prediction(
                        str(file), self.classes[int(p.argmax())],
                        {c: float(v) for c, v in zip(self.classes, p, strict=True)},
                        frame=frame,
                    ))
        order = {image_key(f, k): i for i, (f, k) in enumerate(entries)}
        return sorted(results, key=lambda r: order.get(r.key, 0))
