"""Reading run folders back: settings, epochs, results, the model, and which runs can resume.

Nothing here builds a model unless asked (:func:`load_run`): listing runs and showing their
results reads JSON only.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from torch import nn

from ..data.images import RULE
from ..data.preprocess import Preprocessing
from ..evaluation.held_out import Decision
from ..paths import app_data_dir
from .familiarity import load as load_detector
from .lock import RunLock
from .record import (
    CONFIG,
    METRICS,
    METRICS_LOG,
    PREDICTIONS,
    STATE,
    WEIGHTS,
    RunError,
    read_metadata,
)


def runs_root() -> Path:
    """Where the studio keeps its runs (inside tlstudio's own folder)."""
    return app_data_dir() / "runs"


def new_run_dir(backbone: str, root: Path | None = None) -> Path:
    """A fresh, unused run folder named by time and backbone: ``20261125-101500-resnet18``."""
    root = root or runs_root()
    stem = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{backbone}"
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}-{n}"
    return candidate


def read_config(run_dir: str | Path) -> dict:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise RunError(f"'{run_dir}' is not a tlstudio run folder (no {CONFIG})")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunError(f"{path} is damaged and cannot be read ({exc})") from exc
    if not isinstance(config, dict):
        raise RunError(f"{path} is damaged: it does not hold a run's settings")
    return config


def read_epochs(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: str | Path) -> dict:
    path = Path(run_dir) / METRICS
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


@dataclass
class RunSummary:
    """One run folder at a glance, for lists and for deciding what it can do."""

    dir: Path
    backbone: str
    mode: str
    created: str
    epochs_done: int
    epochs: int
    status: str  # running | finished | stopped | interrupted | not started

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "interrupted", "not started")

    def describe(self) -> str:
        # what matters first: a combo box shows only the start of a long line
        return (f"epoch {self.epochs_done} of {self.epochs} ({self.status}) · {self.mode}, "
                f"{self.backbone} · {self.dir.name}")


def summarize(run_dir: str | Path) -> RunSummary:
    """Status from the files: locked -> running; a state that says finished and
    metrics.json -> finished; metrics.json without that -> stopped; otherwise interrupted
    (killed) or not started."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    train = config.get("train", {})
    state_file = run_dir / STATE
    meta = (json.loads(read_metadata(state_file).get("state", "{}"))
            if state_file.is_file() else {})
    finished = bool(meta.get("finished"))
    has_metrics = (run_dir / METRICS).is_file()
    if RunLock.holder(run_dir) is not None:
        status = "running"  # another process trains into it now
    elif not state_file.is_file() and (run_dir / WEIGHTS).is_file() and has_metrics:
        status = "finished"  # written before runs were resumable
    elif finished and has_metrics:
        status = "finished"
    elif has_metrics:
        status = "stopped"
    elif meta:
        status = "interrupted"
    else:
        status = "not started"
    mode, done = train.get("mode", "?"), int(meta.get("epoch", 0))
    if config.get("adapted"):  # written by `tlstudio adapt`: no training state of its own
        mode = f"{mode}, adapted to '{config['adapted'].get('domain', '?')}'"
        done = int(read_metrics(run_dir).get("epochs_run", 0)) if has_metrics else 0
    return RunSummary(run_dir, config.get("backbone", {}).get("name", "?"), mode,
                      config.get("created", ""), done,
                      int(meta.get("epochs") or train.get("epochs") or 0), status)


def list_runs(root: Path | None = None) -> list[RunSummary]:
    """Every run folder under ``root`` (the studio's runs), newest first."""
    root = root or runs_root()
    out = []
    for folder in sorted(root.glob("*/"), reverse=True) if root.is_dir() else []:
        if (folder / CONFIG).is_file():
            try:
                out.append(summarize(folder))
            except (OSError, ValueError, KeyError) as exc:  # a damaged folder is listed
                out.append(RunSummary(folder, "?", "?", "", 0, 0, f"unreadable ({exc})"))
    return out


@dataclass
class LoadedRun:
    dir: Path
    config: dict
    classes: list[str]
    preprocessing: Preprocessing
    model: nn.Module

    @property
    def metrics(self) -> dict:
        return read_metrics(self.dir)

    @property
    def ood(self):
        """The out-of-distribution detector fitted with the run (None: an older run)."""
        return load_detector(self.dir) if (self.dir / METRICS).is_file() else None

    @property
    def decision(self) -> Decision:
        """Temperature and threshold chosen on validation (argmax for older runs)."""
        try:
            return Decision.from_dict(self.metrics.get("decision"))
        except (TypeError, ValueError) as exc:
            raise RunError(f"{self.dir / METRICS} is damaged: its decision ({exc})") from exc


def check_pixel_rule(config: dict, run_dir: str | Path) -> Preprocessing:
    """A run made under another pixel rule would see different pixels now: refuse it."""
    prep = Preprocessing.from_dict(config["preprocessing"])
    if prep.pixel_rule != RULE:
        raise RunError(f"'{run_dir}' was trained with pixel rule {prep.pixel_rule}; this "
                       f"tlstudio turns files into pixels by {RULE}, so its answers would not "
                       "be the ones validated. Train it again with this version.")
    return prep


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's model (no pretrained download needed) with its best weights."""
    from ..models.backbones import build_model

    run_dir = Path(run_dir)
    config = read_config(run_dir)
    weights = run_dir / WEIGHTS
    if not weights.is_file():
        raise RunError(f"'{run_dir}' has no {WEIGHTS}: no epoch finished yet; continue it "
                       f"with: tlstudio train --resume {run_dir}")
    try:
        classes = [str(c) for c in config["classes"]]
        backbone = str(config["backbone"]["name"])
        prep = check_pixel_rule(config, run_dir)
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{run_dir / CONFIG} is damaged: no valid {exc} entry") from exc
    tensors = read_weights(weights)
    model = build_model(backbone, len(classes), pretrained=False)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise RunError(f"{weights} does not fit {backbone} with {len(classes)} classes "
                       f"({', '.join(classes)}): the file belongs to another run or "
                       "architecture") from exc
    model.eval()
    return LoadedRun(dir=run_dir, config=config, classes=classes, preprocessing=prep,
                     model=model)


def read_weights(path: Path) -> dict:
    """A safetensors checkpoint, refused when damaged or when it holds NaN or infinity
    (a model that would label every image by a NaN probability)."""
    import torch

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        raise RunError(f"{path} is damaged or truncated and cannot be read ({exc})") from exc
    bad = [name for name, t in tensors.items()
           if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise RunError(f"{path} holds non-finite numbers (NaN or infinity) in {len(bad)} "
                       f"tensor(s), e.g. {bad[0]}: training diverged. Train again with a "
                       "lower learning rate.")
    return tensors


def require_finished(run_dir: str | Path) -> None:
    """Exports and reports need a run's final metrics; say how to get them when missing."""
    if not (Path(run_dir) / METRICS).is_file():
        read_config(run_dir)
        raise RunError(f"'{run_dir}' did not finish (no {METRICS}); continue it with: "
                       f"tlstudio train --resume {run_dir}")


@dataclass
class PredictionRow:
    path: str
    label: str
    predicted: str
    confidence: float
    part: str = "val"

    @property
    def correct(self) -> bool:
        return self.label == self.predicted


def read_predictions(run_dir: str | Path, part: str | None = None) -> list[PredictionRow]:
    """The predictions a run wrote (``predictions.csv``), of one part (``val``/``test``)
    or all."""
    path = Path(run_dir) / PREDICTIONS
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [PredictionRow(r["path"], r["label"], r["predicted"], float(r["confidence"]),
                              r.get("part") or "val") for r in csv.DictReader(fh)]
    return [r for r in rows if part is None or r.part == part]
