"""MODEL_CARD.md for an exported model: what it is, what it learned from, how well it did,
and what it should not be used for — with the run's real numbers."""

from __future__ import annotations

import datetime as dt

from ... import __version__
from ..evaluation.uncertainty import format_ci
from .familiarity import held_out_flagged


def _matrix(metrics: dict) -> str:
    classes = metrics["classes"]
    head = "| true \\ predicted | " + " | ".join(classes) + " |"
    rule = "|---" * (len(classes) + 1) + "|"
    rows = [f"| {name} | " + " | ".join(str(v) for v in row) + " |"
            for name, row in zip(classes, metrics["confusion_matrix"], strict=True)]
    return "\n".join([head, rule, *rows])


def _ci(block: dict, name: str) -> str:
    return format_ci(block.get(name), block.get(f"{name}_ci"))


def cv_section(m: dict) -> str:
    cv = m.get("cv")
    if not cv:
        return ""
    folds = ", ".join(f"{f['accuracy'] * 100:.1f} % (n={f['n']})" for f in cv["folds"])
    auc = (f"; ROC AUC {cv['roc_auc_mean']:.3f} ± {cv['roc_auc_std']:.3f}"
           if "roc_auc_mean" in cv else "")
    return (f"## Cross-validation ({cv['k']} folds, every image tested once)\n"
            f"Accuracy {cv['accuracy_mean'] * 100:.1f} % ± {cv['accuracy_std'] * 100:.1f} "
            f"(mean ± SD over folds){auc}. Folds: {folds}. The model described here is the "
            "final one, trained after the folds.\n\n")


def test_section(m: dict) -> str:
    """The held-out numbers first: they were never used to choose anything."""
    t = m.get("test")
    if not t and m.get("cv"):
        return cv_section(m)
    if not t:
        return ("## Held-out test\nNo test part was held out (test fraction 0): the only "
                "numbers are the validation ones below, which also chose the epoch and are "
                "optimistic.\n")
    rows = "\n".join(
        f"| {name} | {format_ci(r['sensitivity'], r['sensitivity_ci'])} | "
        f"{format_ci(r['specificity'], r['specificity_ci'])} | {format_ci(r['ppv'], r['ppv_ci'])} "
        f"| {format_ci(r['npv'], r['npv_ci'])} | {format_ci(r['f1'], r['f1_ci'])} | "
        f"{r['support']} |" for name, r in t["per_class"].items())
    resampled = ("whole patients/groups resampled" if t["intervals"]["resampled"] == "groups"
                 else "images resampled")
    point = ""
    if t.get("threshold") is not None:
        point = (f"- Operating point: '{t['positive_class']}' is called when its probability "
                 f"is at least {t['threshold']:.4f} (rule `{t['threshold_rule']}`, chosen on "
                 f"validation): sensitivity {_ci(t, 'sensitivity')}, specificity "
                 f"{_ci(t, 'specificity')}.\n")
    return cv_section(m) + f"""## Held-out test ({t['n']} images, never used to choose anything)
95 % intervals by bootstrap ({t['intervals']['replicates']} replicates, {resampled}).

- Accuracy {_ci(t, 'accuracy')}; balanced accuracy {_ci(t, 'balanced_accuracy')}{
    f"; ROC AUC {format_ci(t['roc_auc'], t['roc_auc_ci'], percent=False)}"
    if t.get('roc_auc') is not None else ''}.
{point}- Calibration: temperature {t['temperature']:.3f} (fitted on validation); expected
  calibration error {t['ece']:.3f} (before scaling {t['ece_uncalibrated']:.3f}). Exported
  probabilities include the temperature.

| class | sensitivity | specificity | PPV | NPV | F1 | images |
|---|---|---|---|---|---|---|
{rows}

Confusion matrix on the test part (rows: true class, columns: predicted):

{_matrix(t)}
"""


def _export_check(result) -> str:
    if result is None:
        return ""
    return f"""## Export check
The exported file was run on the {result.images} validation and test images the way an outside
user would run it (its own preprocessing from `preprocessing.json`) and compared with the
app: agreement of the called class {result.agreement:.2%}, largest probability difference
{result.max_abs_diff:.2e} (required agreement: 99.5 %).

"""


def _adaptation_section(m: dict) -> str:
    """A run adapted to a new domain says so first: the numbers after it are the source's."""
    if not m.get("adaptation"):
        return ""
    from .adapt_output import describe

    lines = "\n".join(f"- {line}" for line in describe(m["adaptation"]))
    return (f"## Domain adaptation\n{lines}\n- The test and validation numbers below are the "
            "source run's, measured on its own domain before adaptation.\n\n")


def model_card(run, fmt: str | None, result) -> str:
    """The card for an export (``result``: its parity check), or with ``result`` None the
    card of the run itself, as the report carries it."""
    cfg, m = run.config, run.metrics
    backbone, train, data = cfg["backbone"], cfg["train"], cfg["dataset"]
    counts = ", ".join(f"{name}: {n}" for name, n in data["counts"].items())
    sizes = data["split_sizes"]
    per_class = "\n".join(
        f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | "
        f"{row['support']} |" for name, row in m["per_class"].items())
    frozen = ", ".join(cfg["frozen_paths"]) or "none (everything trained)"
    mode = train["mode"]
    how = {"linear-probe": "linear probe: backbone frozen, features computed once, new head "
                           "trained",
           "recommended": "recommended: a linear probe first, then fine-tuning of the "
                          "unfrozen layers from it, smaller steps for earlier layers (LP-FT)"
                          if train.get("probe_first") is not False else
                          "recommended: fine-tuning of the unfrozen layers from a fresh head "
                          "(the images shift early stages from their pretraining), smaller "
                          "steps for earlier layers",
           }.get(mode, "fine-tune of the unfrozen layers")
    today = dt.date.today().isoformat()
    origin = (f"Exported by tlstudio {__version__} on {today} as {fmt.upper()} "
              f"(`{result.model_file.name}`)." if result is not None else
              f"Written by tlstudio {__version__} on {today} for run `{run.dir.name}`.")
    return f"""# Model card: {", ".join(run.classes)} classifier

{origin}

## Model
- Backbone: {backbone['display_name']} (timm `{backbone['timm_name']}`,
  {backbone['parameters'] / 1e6:.1f} M parameters), pretrained on {backbone['pretrained_on']};
  weights license {backbone['license']}; weights from {backbone['source']}.
- New head for {len(run.classes)} classes, in this output order: {", ".join(run.classes)}.
- Pixels: rule {cfg['preprocessing'].get('pixel_rule', 'tlstudio-pixels/1')}, window
  `{cfg['preprocessing'].get('window', 'file')}` for DICOM and 16-bit images (the steps are
  written out in `preprocessing.json`; apply them, or use `tlstudio.export_runtime`).
- Input: RGB, shorter side resized to input/{cfg['preprocessing']['crop_pct']} with
  {cfg['preprocessing']['interpolation']} resampling, centre crop
  {cfg['preprocessing']['input_size'][0]}x{cfg['preprocessing']['input_size'][1]},
  values in [0, 1]; mean/std normalisation is inside the model (see `preprocessing.json`).

## Data
- Source: `{data['root']}` ({data['source']}); classes and images: {counts}.
- Split (seed {train['seed']}, stratified{
    f", {data['groups']} groups never split" if data.get('groups') else ''}):
  {sizes['train']} training, {sizes['val']} validation, {sizes['test']} test images.
- Problems found while scanning: {len(data['problems'])}.

## Training
- Mode: {how}; frozen layers: {frozen}.
- {cfg['trainable_parameters']:,} of {cfg['total_parameters']:,} parameters trained.
- Epochs run: {m['epochs_run']} (best epoch {m['best_epoch']}, early stopping patience
  {train['patience']}); batch size {train['batch_size']}; AdamW, learning rate {train['lr']},
  weight decay {train['weight_decay']}, {train['schedule']} schedule; label smoothing
  {train['label_smoothing']}; augmentation `{train['augmentation']}`; class weights
  {'on' if train['class_weights'] else 'off'}; device {cfg['device']}.

{_adaptation_section(m)}{test_section(m)}{_transfer_section(m)}
## Validation ({m['count']} images; chose the epoch, temperature and threshold)
- Accuracy {m['val_accuracy']:.4f}, balanced accuracy {m['balanced_accuracy']:.4f},
  loss {m['val_loss']:.4f}, macro F1 {m['macro_f1']:.4f}{
    f", ROC AUC {m['roc_auc']:.4f}" if 'roc_auc' in m else ''}.

| class | precision | recall | F1 | images |
|---|---|---|---|---|
{per_class}

Confusion matrix (rows: true class, columns: predicted):

{_matrix(m)}

{_export_check(result)}## Intended use
Sorting or triaging images like the {sizes['train']} it was trained on, with a person
checking the results. It is not a medical device and not validated for diagnosis.

## Limitations
- Trained on {sum(data['counts'].values())} images from one source; performance on other
  scanners, cameras, sites or populations is unknown until measured there.
- The {'test' if m.get('test') else 'validation'} part is small: {
    (m.get('test') or m)['count']} images, so each image moves accuracy by
  {100 / max(1, (m.get('test') or m)['count']):.1f} points.
- The backbone learned from {backbone['pretrained_on']}; biases of that pretraining data
  (what kinds of images, people and places it over- or under-represents) carry over.
- It always answers with one of its {len(run.classes)} classes, even for images of
  something else entirely. {_ood_line(m)}
"""


def _transfer_section(m: dict) -> str:
    t = m.get("transfer")
    if not t:
        return ""
    return (f"\n## Does pretraining help?\nThe same backbone trained from random weights on "
            f"the same split: {t['scratch_accuracy']:.1%} against {t['pretrained_accuracy']:.1%}"
            f" on {t['images']} {t['part']} images. {t['verdict']}\n")


def _ood_line(m: dict) -> str:
    ood = m.get("ood")
    if not ood:
        return "No out-of-distribution warning was fitted for this run."
    share = held_out_flagged(ood)
    return (f"An out-of-distribution warning flags images unlike its training images "
            f"({ood['method']}; threshold {ood['threshold']:.2f}, exported as the "
            f"`ood_score` output with `ood_threshold` in decision.json); it flagged "
            f"{share:.1%} of the held-out images. It is a screen, not a guarantee.")
