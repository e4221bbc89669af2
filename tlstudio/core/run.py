"""RunRecord: the folder a training run leaves behind, and loading it back.

::

    run/
      config.json        what was trained, on what, how (classes, preprocessing, settings)
      split.json         which files trained and which validated
      metrics.jsonl      one line per epoch, appended as training goes (survives a crash)
      metrics.json       final validation metrics of the best checkpoint
      best.safetensors   the best weights (by validation accuracy, then loss)
      predictions.csv    the validation images with true label, prediction and probabilities
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import UserError
from .preprocess import Preprocessing

CONFIG, SPLIT, METRICS_LOG, METRICS, WEIGHTS, PREDICTIONS = (
    "config.json", "split.json", "metrics.jsonl", "metrics.json", "best.safetensors",
    "predictions.csv",
)


class RunError(UserError):
    """A run folder is missing or incomplete."""


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunRecord:
    """Writes a run folder; every file is complete on disk or not there at all."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, data: dict) -> None:
        _write_atomic(self.dir / name, json.dumps(data, indent=2, default=str))

    def append_epoch(self, row: dict) -> None:
        with open(self.dir / METRICS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def save_weights(self, state: dict[str, torch.Tensor]) -> None:
        tmp = self.dir / (WEIGHTS + ".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
        os.replace(tmp, self.dir / WEIGHTS)

    def write_predictions(
        self, paths: list[str], targets: np.ndarray, probabilities: np.ndarray,
        classes: list[str],
    ) -> None:
        rows = [["path", "label", "predicted", "confidence", *[f"p_{c}" for c in classes]]]
        for path, target, probs in zip(paths, targets, probabilities, strict=True):
            best = int(probs.argmax())
            rows.append([path, classes[int(target)], classes[best], f"{probs[best]:.6f}",
                         *[f"{p:.6f}" for p in probs]])
        tmp = self.dir / (PREDICTIONS + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)
        os.replace(tmp, self.dir / PREDICTIONS)


@dataclass
class LoadedRun:
    dir: Path
    config: dict
    classes: list[str]
    preprocessing: Preprocessing
    model: nn.Module

    @property
    def metrics(self) -> dict:
        path = self.dir / METRICS
        return json.loads(path.read_text()) if path.exists() else {}


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a tlstudio run folder (no {CONFIG})")
    return json.loads(path.read_text(encoding="utf-8"))


def read_epochs(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's model (no pretrained download needed) with its best weights."""
    from .backbones import build_model

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise RunError(f"'{run_dir}' has no {WEIGHTS}: the run did not finish an epoch")
    classes = config["classes"]
    model = build_model(config["backbone"]["name"], len(classes), pretrained=False)
    model.load_state_dict(load_file(str(weights)), strict=True)
    model.eval()
    return LoadedRun(
        dir=run_dir, config=config, classes=classes,
        preprocessing=Preprocessing.from_dict(config["preprocessing"]), model=model,
    )


@dataclass
class PredictionRow:
    path: str
    label: str
    predicted: str
    confidence: float

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


def read_predictions(run_dir: str | Path) -> list[PredictionRow]:
    """The validation predictions a run wrote (``predictions.csv``)."""
    path = Path(run_dir) / PREDICTIONS
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [PredictionRow(r["path"], r["label"], r["predicted"], float(r["confidence"]))
                for r in csv.DictReader(fh)]
