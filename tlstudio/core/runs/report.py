"""One report file per run: a self-contained HTML page a reviewer can open anywhere.

Dataset and split, settings, training curves, the held-out test numbers with their intervals,
ROC and precision-recall curves, calibration, the confusion matrix, example heatmaps (the
mistakes first) and the model card. Plots are inline SVG and pictures inline PNG: one file,
no scripts, nothing fetched. No DICOM attribute is written; only pixels of example images
(left out with ``images=False``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

from ... import __version__
from ..evaluation.uncertainty import format_ci
from ..words import count
from .history import read_config, read_epochs, read_metrics, read_predictions, require_finished
from .record import write_atomic

REPORT = "report.html"
EXAMPLES = 6

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1000px;margin:24px auto;
color:#1d2733;line-height:1.45;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{border-bottom:1px solid #d5dbe3;padding-bottom:4px;
margin-top:2em}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d5dbe3;
padding:4px 8px;text-align:right}th{background:#f0f3f7}
td:first-child,th:first-child{text-align:left}.settings td{text-align:left}
.muted{color:#5b6775}.warn{background:#fff4e0;border-left:4px solid #e0a030;padding:6px 10px}
.plots{display:flex;flex-wrap:wrap;gap:16px}.ex{display:inline-block;width:230px;margin:6px;
vertical-align:top;font-size:.85em}.ex img{width:110px;height:auto}pre{white-space:pre-wrap;
background:#f6f8fa;padding:10px;font-size:.85em}
"""


def _e(text) -> str:
    return html.escape(str(text))


def svg_plot(series: list[tuple[str, list[float], list[float], str]], x_label: str,
             y_label: str, title: str, unit_square: bool = True, points=()) -> str:
    """A small line plot as SVG: ``series`` of (name, xs, ys, colour); optional marked
    ``points`` (x, y, label)."""
    w, h, left, bottom, top, right = 320, 260, 46, 40, 26, 12
    xs = [x for _, sx, _, _ in series for x in sx] or [0, 1]
    ys = [y for _, _, sy, _ in series for y in sy] or [0, 1]
    x0, x1 = (0.0, 1.0) if unit_square else (min(xs), max(max(xs), min(xs) + 1))
    y0, y1 = (0.0, 1.0) if unit_square else (min(0.0, min(ys)), max(ys) * 1.05 or 1.0)

    def px(x):
        return left + (x - x0) / (x1 - x0) * (w - left - right)

    def py(y):
        return h - bottom - (y - y0) / (y1 - y0) * (h - bottom - top)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'role="img" aria-label="{_e(title)}">',
             f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{_e(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{w - left - right}" height="{h - top - bottom}" '
             'fill="none" stroke="#9aa5b1"/>']
    for k in range(5):
        fx, fy = x0 + (x1 - x0) * k / 4, y0 + (y1 - y0) * k / 4
        parts.append(f'<text x="{px(fx):.1f}" y="{h - bottom + 14}" font-size="10" '
                     f'text-anchor="middle">{fx:.2g}</text>')
        parts.append(f'<text x="{left - 4}" y="{py(fy) + 3:.1f}" font-size="10" '
                     f'text-anchor="end">{fy:.2g}</text>')
    parts.append(f'<text x="{(left + w - right) / 2}" y="{h - 6}" font-size="11" '
                 f'text-anchor="middle">{_e(x_label)}</text>')
    parts.append(f'<text x="12" y="{(top + h - bottom) / 2}" font-size="11" '
                 f'text-anchor="middle" transform="rotate(-90 12 {(top + h - bottom) / 2})">'
                 f'{_e(y_label)}</text>')
    if unit_square:
        parts.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" '
                     'stroke="#bbb" stroke-dasharray="4 3"/>')
    for n, (name, sx, sy, colour) in enumerate(series):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(sx, sy, strict=True))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                     'stroke-width="2"/>')
        parts.append(f'<text x="{left + 6}" y="{top + 14 + 13 * n}" font-size="10" '
                     f'fill="{colour}">{_e(name)}</text>')
    for x, y, label in points:
        parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4.5" fill="#d62728"/>')
        parts.append(f'<text x="{px(x) + 7:.1f}" y="{py(y) + 12:.1f}" font-size="10">'
                     f'{_e(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _matrix_table(block: dict) -> str:
    classes = block["classes"]
    head = "".join(f"<th>called {_e(c)}</th>" for c in classes)
    rows = "".join(f"<tr><th>true {_e(c)}</th>" + "".join(f"<td>{v}</td>" for v in row)
                   + "</tr>" for c, row in zip(classes, block["confusion_matrix"], strict=True))
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def _metrics_table(block: dict) -> str:
    rows = [("Accuracy", format_ci(block["accuracy"], block["accuracy_ci"])),
            ("Balanced accuracy", format_ci(block["balanced_accuracy"],
                                            block["balanced_accuracy_ci"]))]
    if block.get("roc_auc") is not None:
        rows.append(("ROC AUC", format_ci(block["roc_auc"], block["roc_auc_ci"], percent=False)))
    if block.get("threshold") is not None:
        rows += [(f"Sensitivity ({block['positive_class']})",
                  format_ci(block["sensitivity"], block["sensitivity_ci"])),
                 (f"Specificity ({block['positive_class']})",
                  format_ci(block["specificity"], block["specificity_ci"]))]
    rows.append(("Expected calibration error",
                 f"{block['ece']:.3f} (before temperature scaling "
                 f"{block['ece_uncalibrated']:.3f})"))
    table = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    per = "".join(
        f"<tr><td>{_e(name)}</td>" + "".join(
            f"<td>{_e(format_ci(r[k], r[f'{k}_ci']))}</td>"
            for k in ("sensitivity", "specificity", "ppv", "npv", "f1"))
        + f"<td>{r['support']}</td></tr>" for name, r in block["per_class"].items())
    return (f"<table>{table}</table><table><tr><th>class (against the rest)</th>"
            "<th>sensitivity</th><th>specificity</th><th>PPV</th><th>NPV</th><th>F1</th>"
            f"<th>images</th></tr>{per}</table>")


def _cv(m: dict) -> str:
    cv = m.get("cv")
    if not cv:
        return ""
    rows = "".join(f"<tr><td>fold {f['fold']}</td><td>{f['n']}</td>"
                   f"<td>{_e(format_ci(f['accuracy'], f.get('accuracy_ci')))}</td></tr>"
                   for f in cv["folds"])
    return (f"<h2>Cross-validation ({cv['k']} folds)</h2><p>Every image tested once: accuracy "
            f"{cv['accuracy_mean'] * 100:.1f} % ± {cv['accuracy_std'] * 100:.1f} (mean ± SD "
            "over folds). The model in the rest of this report is the final one.</p>"
            f"<table><tr><th>fold</th><th>images</th><th>accuracy</th></tr>{rows}</table>")


def _transfer(m: dict) -> str:
    t = m.get("transfer")
    if not t:
        return ""
    css = "warn" if t["gain_ci"][1] < 0 else ""
    return (f"<h2>Does pretraining help?</h2><p class='{css}'>{_e(t['verdict'])} Trained from "
            f"random weights on the same split: {t['scratch_accuracy'] * 100:.1f} % against "
            f"{t['pretrained_accuracy'] * 100:.1f} % on the same {t['images']} {t['part']} "
            "images.</p>")


def _subgroups(subgroups: dict) -> str:
    if not subgroups:
        return ""
    rows = "".join(
        f"<tr><td>{_e(name)} = {_e(value)}</td><td>{row['n']}</td>"
        f"<td>{_e(format_ci(row['accuracy'], row['accuracy_ci']))}</td>"
        f"<td>{_e(format_ci(row.get('sensitivity'), row.get('sensitivity_ci')))}</td>"
        f"<td>{_e(format_ci(row.get('specificity'), row.get('specificity_ci')))}</td></tr>"
        for name, values in subgroups.items() for value, row in values.items())
    return ("<h3>Subgroups</h3><p class='muted'>The same frozen threshold and temperature for "
            "each value; small groups have wide intervals.</p><table><tr><th>subgroup</th>"
            "<th>images</th><th>accuracy</th><th>sensitivity</th><th>specificity</th></tr>"
            f"{rows}</table>")


def _curves(block: dict) -> str:
    plots = []
    curves = block.get("curves")
    if curves:
        roc = curves["roc"]
        marks = []
        if block.get("specificity") is not None and block.get("sensitivity") is not None:
            marks = [(1 - block["specificity"], block["sensitivity"],
                      f"threshold {block['threshold']:.3f}")]
        plots.append(svg_plot([("ROC", roc["fpr"], roc["tpr"], "#1f77b4")],
                              "1 − specificity", "sensitivity",
                              f"ROC (AUC {block['roc_auc']:.3f})", points=marks))
        pr = curves["pr"]
        plots.append(svg_plot([("PR", pr["recall"], pr["precision"], "#2ca02c")],
                              "recall", "precision", "Precision–recall"))
    bins = block.get("reliability") or []
    if bins:
        plots.append(svg_plot([("calibrated", [b["confidence"] for b in bins],
                                [b["accuracy"] for b in bins], "#9467bd")],
                              "confidence", "accuracy", f"Reliability (ECE {block['ece']:.3f})"))
    return f'<div class="plots">{"".join(plots)}</div>'


def _training_curves(run_dir: Path) -> str:
    rows = [r for r in read_epochs(run_dir) if "val_loss" in r]
    if not rows:
        return ""
    epochs = [r["epoch"] for r in rows]
    losses = [("validation loss", epochs, [r["val_loss"] for r in rows], "#d62728")]
    if all("train_loss" in r for r in rows):
        losses.insert(0, ("training loss", epochs, [r["train_loss"] for r in rows], "#1f77b4"))
    accuracy = [("validation accuracy", epochs, [r["val_accuracy"] for r in rows], "#2ca02c")]
    return ('<div class="plots">'
            + svg_plot(losses, "epoch", "loss", "Loss", unit_square=False)
            + svg_plot(accuracy, "epoch", "accuracy", "Validation accuracy", unit_square=False)
            + "</div>")


def _png(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _examples(run_dir: Path, part: str) -> str:
    """Heatmaps of up to EXAMPLES images of the headline part, the mistakes first."""
    from ..evaluation.explain import overlay
    from .predict import Predictor

    rows = read_predictions(run_dir, {"validation": "val"}.get(part, part))
    rows.sort(key=lambda r: (r.correct, -r.confidence))
    rows = rows[:EXAMPLES]
    if not rows:
        return ""
    predictor = Predictor.from_run(run_dir, device="cpu")
    predictions = predictor.predict([r.path for r in rows])
    explanations = predictor.explain(predictions)
    cells = []
    for row, prediction, explanation in zip(rows, predictions, explanations, strict=True):
        if explanation is None:  # moved or unreadable since training
            continue
        image = explanation.image.copy()
        image.thumbnail((220, 220))
        small = Image.fromarray((explanation.heatmap * 255).astype(np.uint8)).resize(image.size)
        cells.append(
            f'<div class="ex"><img alt="image" src="data:image/png;base64,{_png(image)}">'
            f'<img alt="heatmap" src="data:image/png;base64,'
            f'{_png(overlay(image, np.asarray(small, dtype=np.float32) / 255.0))}"><br>'
            f"true <b>{_e(row.label)}</b>, called <b>{_e(prediction.label)}</b> "
            f"({_e(f'{row.confidence:.0%}')})</div>")
    return ("<p class='muted'>Grad-CAM for the class each image was called: warm colours "
            "mark where the evidence for it lay. Mistakes first.</p>" + "".join(cells))


def build_report(run_dir: str | Path, images: bool = True) -> str:
    """The report's HTML text (nothing written)."""
    from .history import load_run
    from .model_card import model_card

    run_dir = Path(run_dir)
    require_finished(run_dir)
    config, m = read_config(run_dir), read_metrics(run_dir)
    part = ("adapted" if m.get("adapted") else "test" if m.get("test") else "validation")
    block = m.get(part)
    part_words = {"adapted": "labeled new-domain", "test": "held-out test",
                  "validation": "validation"}[part]
    data, train = config["dataset"], config["train"]
    counts = ", ".join(f"{_e(k)}: {v}" for k, v in data["counts"].items())
    sizes = data["split_sizes"]
    warn = ("" if part != "validation" else
            '<p class="warn">No test part was held out: every number below comes from the '
            "validation images that also chose the epoch, threshold and temperature, so they "
            "are optimistic.</p>")
    if m.get("adaptation"):
        from .adapt_output import describe

        warn = ("<h2>Domain adaptation</h2>"
                + "".join(f"<p>{_e(line)}</p>" for line in describe(m["adaptation"]))
                + ("" if part == "adapted" else
                   '<p class="warn">The results below are the source run\'s, measured on its '
                   "own domain before adaptation: accuracy on the new domain is "
                   "unverified.</p>"))
    if block is None:  # a run from before intervals
        results = (f"<p>Validation accuracy {m['val_accuracy']:.3f} on {m['count']} images "
                   "(trained with an older tlstudio: no intervals).</p>")
    else:
        resampled = ("whole patients/groups" if block["intervals"]["resampled"] == "groups"
                     else "images")
        results = (f"<p>{block['n']} {part_words} "
                   f"images. 95 % intervals by bootstrap ({block['intervals']['replicates']} "
                   f"replicates over {resampled}).</p>"
                   + _metrics_table(block)
                   + (f"<p>Operating point: <b>{_e(block['positive_class'])}</b> when its "
                      f"probability is at least {block['threshold']:.4f} (rule "
                      f"<code>{_e(block['threshold_rule'])}</code>, chosen on validation). "
                      f"Temperature {block['temperature']:.3f}, fitted on validation.</p>"
                      if block.get("threshold") is not None else
                      f"<p>Temperature {block['temperature']:.3f}, fitted on validation.</p>")
                   + _curves(block) + "<h3>Confusion matrix</h3>" + _matrix_table(block)
                   + _subgroups(block.get("subgroups") or {}))
    # an adapted run's source parts hold the source model's answers: no heatmaps of another
    examples = (_examples(run_dir, part) if images and block is not None
                and not (m.get("adaptation") and part != "adapted") else "")
    card = model_card(load_run(run_dir), None, None)
    frozen = ", ".join(config.get("frozen_paths") or []) or "none"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>tlstudio report: {_e(run_dir.name)}</title>
<style>{STYLE}</style></head><body>
<h1>{_e(", ".join(config["classes"]))} classifier</h1>
<p class="muted">Run {_e(run_dir.name)} · report written {dt.datetime.now():%Y-%m-%d %H:%M} by
tlstudio {__version__}</p>
{warn}
<h2>Data</h2>
<p>Source <code>{_e(data["root"])}</code> ({_e(data["source"])}); images per class: {counts}.
Split (seed {train["seed"]}, stratified{", groups never split" if data.get("groups") else ""}):
{sizes["train"]} training, {sizes["val"]} validation, {sizes.get("test", 0)} held-out test.
{count(len(data["problems"]), "file or row", "files or rows")} reported while scanning.</p>
<h2>Settings</h2>
<table class="settings">
<tr><td>Backbone</td><td>{_e(config["backbone"]["display_name"])} (pretrained on
{_e(config["backbone"]["pretrained_on"])})</td></tr>
<tr><td>Mode</td><td>{_e(train["mode"])}; frozen: {_e(frozen)}</td></tr>
<tr><td>Trained parameters</td><td>{config["trainable_parameters"]:,} of
{config["total_parameters"]:,}</td></tr>
<tr><td>Epochs</td><td>{m["epochs_run"]} run, best {m["best_epoch"]}</td></tr>
<tr><td>Optimiser</td><td>AdamW, learning rate {train["lr"]}, weight decay
{train["weight_decay"]}, {_e(train["schedule"])}, batch {train["batch_size"]}</td></tr>
<tr><td>Augmentation</td><td>{_e(train["augmentation"])}</td></tr>
<tr><td>Pixels</td><td>{_e(config["preprocessing"].get("pixel_rule"))}, window
{_e(config["preprocessing"].get("window", "file"))}</td></tr>
</table>
<h2>Training</h2>
{_training_curves(run_dir)}
{_cv(m)}
{_transfer(m)}
<h2>Results ({part_words})</h2>
{results}
<h2>Examples with heatmaps</h2>
{examples or "<p class='muted'>Left out.</p>"}
<h2>Model card</h2>
<pre>{_e(card)}</pre>
</body></html>
"""


def write_report(run_dir: str | Path, out: str | Path | None = None,
                 images: bool = True) -> Path:
    """Write the report (default: ``report.html`` in the run) atomically; returns its path."""
    run_dir = Path(run_dir)
    text = build_report(run_dir, images)
    target = Path(out) if out else run_dir / REPORT
    if target.exists() and target.is_dir():
        target = target / REPORT
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, text)
    os.chmod(target, 0o644)
    return target
