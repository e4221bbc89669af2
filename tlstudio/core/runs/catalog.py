"""Every run kept: list them with what matters, compare them side by side, delete one.

The studio's Runs view and ``tlstudio runs`` / ``tlstudio compare`` both read from here; only
JSON is read, so a long list is fast and no model is built.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.uncertainty import format_ci
from .history import RunSummary, list_runs, read_config, read_metrics, summarize
from .lock import RunLock
from .record import CONFIG, RunError


@dataclass
class RunOverview:
    """One line of the Runs view."""

    summary: RunSummary
    dataset: str
    classes: list[str]
    metrics: dict

    @property
    def dir(self) -> Path:
        return self.summary.dir

    @property
    def headline(self) -> str:
        """The number to judge a run by, saying which part it comes from."""
        m = self.metrics
        if m.get("adaptation"):
            domain = m["adaptation"]["domain"]
            if m.get("adapted"):
                a = m["adapted"]
                return (f"adapted to '{domain}': accuracy "
                        f"{format_ci(a['accuracy'], a.get('accuracy_ci'))} on {a['n']} labeled "
                        "new-domain images")
            return (f"adapted to '{domain}': accuracy there unverified (no labels given); "
                    "the source's numbers do not apply")
        if m.get("test"):
            t = m["test"]
            return f"test accuracy {format_ci(t['accuracy'], t.get('accuracy_ci'))} (n={t['n']})"
        if "val_accuracy" in m:
            return (f"validation accuracy {m['val_accuracy'] * 100:.1f} % (n={m['count']}; "
                    "no held-out test)")
        return self.summary.status

    def as_dict(self) -> dict:
        s = self.summary
        return {"run": str(s.dir), "name": s.dir.name, "created": s.created,
                "dataset": self.dataset, "classes": self.classes, "backbone": s.backbone,
                "mode": s.mode, "status": s.status, "epochs_done": s.epochs_done,
                "epochs": s.epochs, "headline": self.headline}


def overview(run_dir: str | Path) -> RunOverview:
    summary = summarize(run_dir)
    config = read_config(run_dir)
    dataset = config.get("dataset", {}).get("root", "?")
    return RunOverview(summary, str(dataset), list(config.get("classes", [])),
                       read_metrics(run_dir))


def list_overviews(root: Path | None = None) -> list[RunOverview]:
    """Every run under ``root`` (tlstudio's runs folder), newest first; damaged folders are
    listed with the reason instead of hidden."""
    out = []
    for summary in list_runs(root):
        try:
            out.append(overview(summary.dir))
        except (OSError, ValueError, KeyError, TypeError, RunError):
            out.append(RunOverview(summary, "?", [], {}))
    return out


def delete_run(run_dir: str | Path) -> None:
    """Remove a run folder; refused for a folder that is not a run or a run in training."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).is_file():
        raise RunError(f"'{run_dir}' is not a tlstudio run folder (no {CONFIG}); nothing "
                       "was deleted")
    holder = RunLock.holder(run_dir)
    if holder is not None:
        raise RunError(f"'{run_dir}' is in use: {holder} is training into it; stop it first")
    shutil.rmtree(run_dir)


COMPARED = (("accuracy", True), ("balanced_accuracy", True), ("roc_auc", False),
            ("sensitivity", True), ("specificity", True))


def comparison(run_dirs: list[str | Path]) -> list[dict]:
    """One row per run: the headline part's numbers with intervals, and its ROC curve,
    so runs can be put side by side. Runs measured on different test images are flagged."""
    rows = []
    for run_dir in run_dirs:
        config, m = read_config(run_dir), read_metrics(run_dir)
        if not m:
            raise RunError(f"'{run_dir}' has no results yet (it did not finish)")
        part = "adapted" if m.get("adapted") else "test" if m.get("test") else "validation"
        if m.get("adaptation") and part != "adapted":
            raise RunError(f"'{run_dir}' was adapted to '{m['adaptation']['domain']}' without "
                           "labels: its accuracy there was not measured, and the source "
                           "run's numbers do not describe it. Adapt again with --labels to "
                           "compare it.")
        block = m.get(part) or {}
        row = {"run": str(run_dir), "name": Path(run_dir).name,
               "backbone": config["backbone"]["name"], "mode": config["train"]["mode"],
               "part": part, "n": block.get("n", m.get("count")),
               "dataset": config.get("dataset", {}).get("root"),
               "split_seed": config["train"].get("seed"),
               "test_fraction": config["train"].get("test_fraction", 0.0),
               "curves": block.get("curves"),
               # labeled new-domain images: the same only for the same domain and images
               "new_domain": ((m["adaptation"]["domain"], block.get("n"))
                              if part == "adapted" else None)}
        for name, _ in COMPARED:
            row[name] = block.get(name, m.get(name) if name == "accuracy" else None)
            row[f"{name}_ci"] = block.get(f"{name}_ci")
        row["ece"] = block.get("ece")
        rows.append(row)
    same = {(r["dataset"], r["split_seed"], r["test_fraction"], r["part"], r["new_domain"])
            for r in rows}
    for r in rows:
        r["same_test_images"] = len(same) == 1
    return rows


def comparison_text(rows: list[dict]) -> list[str]:
    """The comparison as lines for a terminal (and the studio's table uses the same cells)."""
    lines = []
    for r in rows:
        cells = [f"{r['name']}  ({r['backbone']}, {r['mode']}; {r['part']}, n={r['n']})"]
        for name, percent in COMPARED:
            if r.get(name) is not None:
                cells.append(f"  {name.replace('_', ' ')}: "
                             f"{format_ci(r[name], r.get(f'{name}_ci'), percent=percent)}")
        if r.get("ece") is not None:
            cells.append(f"  calibration error: {r['ece']:.3f}")
        lines.extend(cells)
    if rows and not rows[0]["same_test_images"]:
        lines.append("note: these runs were not measured on the same images (other dataset, "
                     "split seed or test share): differences mix model and data.")
    return lines
