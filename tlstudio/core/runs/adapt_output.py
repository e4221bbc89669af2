"""What an adaptation leaves: the new run folder, written whole or not at all, and the
adaptation in sentences (the CLI, the studio, the report and the model card say the same)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from ..paths import process_alive
from . import familiarity
from .history import LoadedRun, read_metrics
from .record import (
    CONFIG,
    METRICS,
    PREDICTIONS,
    WEIGHTS,
    prediction_header,
    prediction_rows,
    save_tensors_atomic,
    write_atomic,
)

ADAPTED_PART = "adapted"  # predictions.csv rows of the labeled new-domain images


def write_run(run: LoadedRun, model, out_dir: str | Path, block: dict,
              labeled: dict | None) -> None:
    """The new run, written whole into a hidden folder beside ``out_dir`` and then renamed:
    an interrupted adapt leaves no half-written run."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.partial-*"):  # of a killed adapt
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        config = dict(run.config)
        config["created"] = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        config["adapted"] = {k: block[k] for k in ("source_run", "source_name", "method",
                                                   "domain", "images", "kept")
                             if k in block}
        if "kept_because" in block:
            config["adapted"]["kept_because"] = block["kept_because"]
        write_atomic(partial / CONFIG, json.dumps(config, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_tensors_atomic(partial / WEIGHTS, state)
        for name in ("split.json", "metrics.jsonl", familiarity.OOD):
            if (run.dir / name).is_file():
                shutil.copy2(run.dir / name, partial / name)
        metrics = read_metrics(run.dir)
        metrics["adaptation"] = block
        if labeled is not None:
            metrics[ADAPTED_PART] = labeled["report"]
            metrics["headline"] = ADAPTED_PART
            _write_predictions(partial, run, labeled,
                               run.decision.calibrate(labeled["probabilities"]), run.decision)
        elif (run.dir / PREDICTIONS).is_file():
            shutil.copy2(run.dir / PREDICTIONS, partial / PREDICTIONS)
        write_atomic(partial / METRICS, json.dumps(metrics, indent=2))
        if out_dir.exists():
            out_dir.rmdir()  # checked empty before any work
        os.replace(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _write_predictions(partial: Path, run: LoadedRun, labeled: dict, calibrated: np.ndarray,
                       decision) -> None:
    """The source run's rows as they were (its own images, its own model), then the labeled
    new-domain images under the kept model."""
    source = run.dir / PREDICTIONS
    rows = []
    if source.is_file():
        with open(source, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh)][1:]
    rows += prediction_rows([(ADAPTED_PART, key) for key in labeled["keys"]],
                            labeled["targets"], calibrated, run.classes,
                            decision.call(calibrated))
    text = io.StringIO()
    csv.writer(text).writerows([prediction_header(run.classes), *rows])
    write_atomic(partial / PREDICTIONS, text.getvalue())


# --- in words (the CLI, the studio and the report say the same)-----------------------

def _pct(value: float | None) -> str:
    return "not measured (no detector)" if value is None else f"{value:.1%}"


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:.1%} (95 % CI {ci[0]:.1%} to {ci[1]:.1%})"


def describe(block: dict) -> list[str]:
    """The adaptation in sentences: what was done, the measures before and after, and
    whether accuracy on the new domain was measured at all."""
    shift, ood = block["shift"], block["ood_flagged"]
    difference = block.get("difference") or {"changed": True}  # runs adapted before it
    if difference["changed"]:
        lines = [f"Adapted {block['source_name']} to '{block['domain']}' "
                 f"({block['images']} images) by {block['method_words']}."]
    else:
        lines = [f"No change of domain found between {block['source_name']} and "
                 f"'{block['domain']}' ({block['images']} images): they differ from the "
                 f"source's own by {difference['from_source']:.4f}, no more than samples of "
                 f"the source's own images do by luck (up to {difference['by_luck']:.4f}). "
                 "The new run keeps the source model unchanged."]
    if block.get("images_found", block["images"]) > block["images"]:
        lines.append(f"{block['images']} of the {block['images_found']} images found were "
                     "used (a random sample, the labeled ones always): enough for the "
                     "statistics.")
    lines += [f"Shift from the source (BatchNorm statistics; the source's own images "
              f"{shift['source']:.2f}): {shift['before']:.2f} before, {shift['after']:.2f} "
              "after" + (" (close to the source's by the way adapting works: it shows the "
                         "adaptation took, not that the answers are right)."
                         if difference["changed"] else "."),
              f"Flagged as unlike the training images: {_pct(ood['before'])} before, "
              f"{_pct(ood['after'])} after."]
    if block["accuracy"] == "measured":
        gain = block["gain"]
        lines.append(
            f"Accuracy on {block['labeled']} labeled new-domain images: "
            f"{_ci(block['before']['accuracy'], block['before']['accuracy_ci'])} before, "
            f"{_ci(block['after']['accuracy'], block['after']['accuracy_ci'])} after "
            f"({gain * 100:+.1f} points, 95 % CI {block['gain_ci'][0] * 100:+.1f} to "
            f"{block['gain_ci'][1] * 100:+.1f}).")
        if "labeled_found" in block:
            lines.append(f"The labels named {block['labeled_found']} images; a random sample "
                         f"of {block['labeled']} was scored: enough to measure accuracy.")
        if difference["changed"] and block["kept"] == "source":
            lines.append("Adapting lowered accuracy on your labeled images, so the new run "
                         "keeps the source model unchanged.")
        if difference["changed"]:
            lines.append("The better of the two was chosen on these same images, so the kept "
                         "accuracy is slightly optimistic; label more images to confirm it.")
    elif difference["changed"]:
        lines.append("Accuracy on the new domain is unverified: no labeled images of it were "
                     "given. Label a few dozen (--labels) to measure it before relying on "
                     "the adapted run.")
    if block["left_out"]:
        lines.append(f"{len(block['left_out'])} file(s) not used: "
                     + "; ".join(f"{r['path']}: {r['reason']}" for r in block["left_out"][:5])
                     + (" …" if len(block["left_out"]) > 5 else ""))
    return lines
