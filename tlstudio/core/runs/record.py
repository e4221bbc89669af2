"""RunRecord: the folder a training run leaves behind, written so that it survives kill -9.

::

    run/
      config.json         what was trained, on what, how (classes, preprocessing, settings)
      split.json          which files trained, which validated, which were held out
      metrics.jsonl       one line per completed epoch (rewritten from the state on resume)
      state.safetensors   the whole training state after the last completed epoch, for
                          ``--resume`` (tensors; the rest as JSON in the file's metadata)
      best.safetensors    the best weights (validation accuracy, then loss); epoch in metadata
      metrics.json        the best checkpoint's results: validation (which chose the epoch,
                          temperature and threshold) and the held-out ``test`` block
      predictions.csv     validation and test images: part, true label, the run's call and
                          calibrated probabilities
      .lock               held while a process trains into the folder

Every file is replaced atomically (written beside, then renamed): a reader or a resumed run
sees the old version or the new one, never half of one.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ...errors import UserError

CONFIG, SPLIT, METRICS_LOG, METRICS, WEIGHTS, PREDICTIONS, STATE = (
    "config.json", "split.json", "metrics.jsonl", "metrics.json", "best.safetensors",
    "predictions.csv", "state.safetensors",
)


class RunError(UserError):
    """A run folder is missing, incomplete or busy."""


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def write_atomic(path: Path, text: str) -> None:
    tmp = _tmp(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_tensors_atomic(path: Path, tensors: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> None:
    tmp = _tmp(path)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp),
              metadata=metadata)
    os.replace(tmp, path)


def read_metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as fh:
        return fh.metadata() or {}


class RunRecord:
    """Writes one run folder."""

    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    def write_json(self, name: str, data: dict) -> None:
        write_atomic(self.dir / name, json.dumps(data, indent=2, default=str))

    def append_epoch(self, row: dict) -> None:
        with open(self.dir / METRICS_LOG, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def rewrite_epochs(self, rows: list[dict]) -> None:
        write_atomic(self.dir / METRICS_LOG, "".join(json.dumps(r) + "\n" for r in rows))

    def save_weights(self, state: dict[str, torch.Tensor], epoch: int) -> None:
        save_tensors_atomic(self.dir / WEIGHTS, state, {"epoch": str(epoch)})

    def weights_epoch(self) -> int | None:
        """The epoch ``best.safetensors`` comes from, or None when there is none."""
        path = self.dir / WEIGHTS
        if not path.is_file():
            return None
        return int(read_metadata(path).get("epoch", -1))

    def save_state(self, tensors: dict[str, torch.Tensor], meta: dict) -> None:
        save_tensors_atomic(self.dir / STATE, tensors, {"state": json.dumps(meta)})

    def load_state(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The saved training state, or None before the first epoch ended."""
        path = self.dir / STATE
        if not path.is_file():
            return None
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {})["state"])
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a dict)
                tensors[key] = fh.get_tensor(key)
        return tensors, meta

    def write_predictions(
        self, rows: list[tuple[str, str]], targets: np.ndarray, probabilities: np.ndarray,
        classes: list[str], predicted: np.ndarray | None = None,
    ) -> None:
        """One line per evaluated image: its part (val/test), path, true label, the class the
        run calls (its threshold applied), and the calibrated probabilities."""
        out = [prediction_header(classes),
               *prediction_rows(rows, targets, probabilities, classes, predicted)]
        tmp = _tmp(self.dir / PREDICTIONS)
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(out)
        os.replace(tmp, self.dir / PREDICTIONS)


def prediction_header(classes: list[str]) -> list[str]:
    """The first line of ``predictions.csv``."""
    return ["part", "path", "label", "predicted", "confidence", *[f"p_{c}" for c in classes]]


def prediction_rows(rows: list[tuple[str, str]], targets: np.ndarray,
                    probabilities: np.ndarray, classes: list[str],
                    predicted: np.ndarray | None = None) -> list[list[str]]:
    """The lines of ``predictions.csv`` for ``(part, path)`` rows: true label, the run's
    call (the argmax unless ``predicted`` says otherwise), its confidence, every
    probability."""
    if predicted is None:
        predicted = np.asarray(probabilities).argmax(axis=1)
    out = []
    for (part, path), target, probs, call in zip(rows, targets, probabilities, predicted,
                                                 strict=True):
        call = int(call)
        out.append([part, path, classes[int(target)], classes[call],
                    f"{float(probs[call]):.6f}", *[f"{float(p):.6f}" for p in probs]])
    return out
