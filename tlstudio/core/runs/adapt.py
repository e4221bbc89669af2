"""Carry a trained run to a new domain (another scanner, site or camera) with that domain's
unlabeled images: `tlstudio adapt` and the studio's "Adapt to new images".

Methods (BENCHMARKS.md, "Domain adaptation", holds the evidence behind the default):

- ``statistics``: every BatchNorm layer normalises the new domain's inputs by their own mean
  and spread, then restores the mean and spread the source images had at that point
  (:func:`..evaluation.normalisation.align`). The head and every trained layer see the kind of
  features they were trained on, so nothing is retrained and the source domain itself is left
  as it was. Plain re-estimation (AdaBN) would instead hand a head trained under ImageNet's
  statistics features it never saw, which made accuracy worse when measured.
- ``entropy``: ``statistics``, then one pass of entropy minimisation on the BatchNorm scales
  and shifts (TENT, Wang et al. 2021): the model learns to be decisive on the new images.

Backbones without BatchNorm (ViT, ConvNeXt) keep no statistics of a domain: refused with a
message. The source run is never changed: the result is a new run folder that predict,
export and the report read like any other, its config naming the source run, the method and
the domain. With a few labeled images of the new domain, accuracy before and after is
measured with intervals and the better model is kept; without, the shift and the
out-of-distribution rate before and after are reported and accuracy is said to be unverified.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import UserError
from ...pixels import image_entries, image_key, parse_image_key
from ..data.images import ImageReadError, read_image
from ..data.preprocess import Preprocessing, prepare
from ..engine.device import DeviceSetup, pick_device
from ..engine.events import StageProgress
from ..engine.inference import eval_inputs, predict_with_features
from ..evaluation.domain_shift import shift_by_stage, stage_shift
from ..evaluation.held_out import report
from ..evaluation.normalisation import (
    align,
    combine,
    distance,
    has_batch_norm,
    input_moments,
    moment_sums,
    sampling_noise,
)
from ..evaluation.uncertainty import Resampler, interval
from ..paths import process_alive
from . import familiarity, source_domain
from .history import LoadedRun, load_run, read_config, read_metrics, require_finished
from .record import CONFIG, METRICS, PREDICTIONS, WEIGHTS, save_tensors_atomic, write_atomic

METHODS = {
    "statistics": "normalisation statistics aligned to the source (domain-specific "
                  "BatchNorm)",
    "entropy": "normalisation statistics aligned, then entropy minimisation on the "
               "BatchNorm scales and shifts (TENT)",
}
DEFAULT_METHOD = "statistics"
MIN_IMAGES = 16  # fewer give statistics too noisy to normalise with
SOURCE_IMAGES = 1000  # training images that measure what each layer saw at the source
TARGET_IMAGES = 2000  # new images read at most (the labeled ones always): enough for statistics
SOURCE_PARTS = 10  # random parts of them: how far a sample lies from the source by luck
NOISE_MARGIN = 1.5  # a change of domain is a difference this many times the largest by luck
ADAPTED_PART = "adapted"  # predictions.csv rows of the labeled new-domain images
ENTROPY_LR = 1e-3

Emit = Callable[[object], None]


class AdaptError(UserError):
    """A request adapt cannot carry out; the message says why and what to do."""


@dataclass
class Images:
    """The readable images of a request (prepared squares), with what was left out and why."""

    squares: np.ndarray
    keys: list[str]
    left_out: list[tuple[str, str]] = field(default_factory=list)
    found: int = 0  # images found, before a random sample of at most TARGET_IMAGES


# --- checks that come before any slow work ------------------------------------------------

def check_request(run_dir: str | Path, images: str | Path, out_dir: str | Path,
                  labels: str | Path | None = None, method: str = DEFAULT_METHOD,
                  ) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Refuse a request that cannot work, in milliseconds, before a model is built; returns
    the labels (:func:`read_labels`), read once."""
    run_dir, images, out_dir = Path(run_dir), Path(images).expanduser(), Path(out_dir)
    require_finished(run_dir)
    config = read_config(run_dir)
    adapted = config.get("adapted")
    if adapted:
        raise AdaptError(f"'{run_dir}' is itself adapted (to '{adapted.get('domain')}'): "
                         f"adapt its source run instead, {adapted.get('source_run')}, so that "
                         "every domain is aligned to the images the model was trained on")
    if method not in METHODS:
        raise AdaptError(f"--method: '{method}' is not one of {', '.join(METHODS)}")
    if not images.is_dir():
        raise AdaptError(f"--images: '{images}' is not a folder of images of the new domain")
    if labels is not None and not Path(labels).expanduser().is_file():
        raise AdaptError(f"--labels: '{labels}' is not a file (a CSV of path,label rows)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise AdaptError(f"--out: '{out_dir}' already exists and is not empty; name a new "
                         "folder (the source run is never overwritten)")
    if out_dir.resolve() == run_dir.resolve():
        raise AdaptError("--out must be a new folder, not the source run")
    for inside in (images, run_dir):
        if out_dir.resolve().is_relative_to(inside.resolve()):
            raise AdaptError(f"--out: '{out_dir}' lies inside '{inside}'; tlstudio writes "
                             "nothing into your image folders or into a run: name a folder "
                             "elsewhere")
    # the rows and the files are counted now (no image is decoded): seconds, not minutes
    known, left_out = (read_labels(labels, [str(c) for c in config.get("classes", [])])
                       if labels else ({}, []))
    from .predict import expand_paths

    found = len(expand_paths([images]))
    if found + len(set(known) - _keys_under(images, known)) < MIN_IMAGES:
        raise AdaptError(f"--images: '{images}' holds {found} image file(s); adapting needs "
                         f"at least {MIN_IMAGES} images of the new domain")
    return known, left_out


def read_labels(csv_file: str | Path, classes: list[str]) -> tuple[dict[str, int],
                                                                      list[tuple[str, str]]]:
    """``{image key: class index}`` from a CSV read like any CSV dataset, and the rows left
    out with their reasons (unreadable, or a class the run does not know)."""
    from ..data.dataset import read_label_rows

    items, problems = read_label_rows(Path(csv_file).expanduser())
    left_out = [(str(p.path or csv_file), p.message) for p in problems if p.skipped]
    known = {}
    for item in items:
        if item.label in classes:
            known[same_image(item.key)] = classes.index(item.label)
        else:
            left_out.append((item.key, f"class '{item.label}' is not one the run knows "
                                       f"({', '.join(classes)})"))
    if not known:
        raise AdaptError(f"--labels: no row of '{csv_file}' names an image of one of the "
                         f"run's classes ({', '.join(classes)})")
    return known, left_out


def same_image(key: str) -> str:
    """One name per image however it was reached (a link, ``..``, a relative path): the
    resolved file, and its frame."""
    file, frame = parse_image_key(key)
    return image_key(Path(file).expanduser().resolve(), frame)


def read_images(paths: list[str | Path], prep: Preprocessing,
                emit: Emit | None = None, stage: str = "reading the new images",
                limit: int | None = None, keep: set[str] | frozenset = frozenset(),
                seed: int = 0) -> Images:
    """Every image under ``paths`` (files, folders, frame keys) turned into the model's
    squares by the one pixel rule; unreadable ones listed with their reason. ``limit``: at
    most this many, drawn at random, the ``keep`` keys always among them."""
    from .predict import expand_paths

    entries = [entry for raw in paths for file in expand_paths([raw])
               for entry in image_entries(file, prep.frames)]
    found = len(entries)
    if limit is not None and len(entries) > limit:
        kept = [e for e in entries if same_image(image_key(*e)) in keep]
        others = [e for e in entries if same_image(image_key(*e)) not in keep]
        drawn = np.random.default_rng(seed).permutation(len(others))[
            : max(0, limit - len(kept))]
        entries = kept + [others[k] for k in sorted(drawn)]
    squares, keys, left_out = [], [], []
    for k, (file, frame) in enumerate(entries):
        key = same_image(image_key(file, frame))
        try:
            squares.append(prepare(read_image(file, prep.window, frame), prep))
            keys.append(key)
        except ImageReadError as exc:
            left_out.append((key, str(exc)))
        if emit is not None and (k % 32 == 31 or k == len(entries) - 1):
            emit(StageProgress(stage, k + 1, len(entries)))
    side = prep.input_size
    array = np.stack(squares) if squares else np.zeros((0, side[0], side[1], 3), np.uint8)
    return Images(array, keys, left_out, found)


# --- the measures before and after -------------------------------------------------------

def _stages(stages: list[dict]) -> list[dict]:
    return [{"stage": s["stage"], "shift": float(s["shift"])} for s in stages]


def _mean(stages: list[dict]) -> float:
    return float(np.mean([s["shift"] for s in stages])) if stages else float("nan")


def _ood_rate(model, detector, squares, prep, setup, batch_size) -> float | None:
    if detector is None:
        return None
    _, features = predict_with_features(model, squares, prep, setup, batch_size)
    return float(detector.flags(detector.scores(features)).mean())


def _measures(model, detector, squares, prep, setup, batch_size) -> dict:
    stages = _stages(stage_shift(model, squares, prep, setup, batch_size))
    return {"shift": _mean(stages), "stages": stages,
            "ood_flagged": _ood_rate(model, detector, squares, prep, setup, batch_size)}


def _accuracy_gain(before: np.ndarray, after: np.ndarray, seed: int) -> dict:
    """Paired bootstrap of after - before correctness on the same labeled images."""
    weights = Resampler.draw(len(before), seed=seed).weights
    totals = weights.sum(axis=1)
    gains = (weights @ (after.astype(float) - before.astype(float))) / totals
    return {"gain": float(after.mean() - before.mean()), "gain_ci": interval(gains)}


# --- the methods ---------------------------------------------------------------------------

def _entropy_pass(model, squares, prep: Preprocessing, setup: DeviceSetup, batch_size: int,
                  seed: int) -> None:
    """One pass of entropy minimisation over the new images, learning only the BatchNorm
    scales and shifts; the statistics stay as aligned (evaluation mode)."""
    from ..evaluation.normalisation import batch_norms

    params = [p for _, m in batch_norms(model) for p in (m.weight, m.bias) if p is not None]
    wanted = {id(p) for p in params}
    for p in model.parameters():
        p.requires_grad_(id(p) in wanted)
    optimiser = torch.optim.Adam(params, lr=ENTROPY_LR)
    model.eval()
    order = np.random.default_rng(seed).permutation(len(squares))
    for _, x in eval_inputs(squares[order], prep, setup, batch_size):
        if len(x) < 2:
            continue
        with torch.enable_grad():
            logits = model(x).float()
            loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
            if not torch.isfinite(loss):
                raise AdaptError("entropy minimisation produced a non-finite loss; nothing "
                                 "was written. Use --method statistics.")
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()


def adapted_model(run: LoadedRun, source: dict, squares: np.ndarray, method: str,
                  setup: DeviceSetup, batch_size: int = 32, seed: int = 0):
    """A copy of the run's model adapted to ``squares`` (the source model is untouched)."""
    model = copy.deepcopy(run.model).to(setup.device)
    from ..evaluation.normalisation import batch_norms

    changed = align(model, source, squares, run.preprocessing, setup, batch_size)
    if changed != len(batch_norms(model)):
        raise AdaptError(f"only {changed} of the model's {len(batch_norms(model))} BatchNorm "
                         "layers have source statistics: the run's source_statistics file "
                         "does not belong to this model. Delete it to measure the training "
                         "images instead.")
    if method == "entropy":
        _entropy_pass(model, squares, run.preprocessing, setup, batch_size, seed)
    return model


def source_statistics(run: LoadedRun, setup: DeviceSetup, batch_size: int,
                      emit: Emit | None = None, seed: int = 0) -> tuple[dict, int]:
    """What each BatchNorm layer received from the run's own training images (at most
    ``SOURCE_IMAGES`` of them) as sums over ``SOURCE_PARTS`` random parts
    (:func:`..evaluation.normalisation.moment_sums`), for runs trained before these sums
    were kept with the run; the images must still be where they were."""
    split_file = run.dir / "split.json"
    try:
        keys = list(json.loads(split_file.read_text(encoding="utf-8"))["train"])
    except (OSError, ValueError, KeyError) as exc:
        raise AdaptError(f"{split_file} is missing or damaged ({exc}): the run's training "
                         "images cannot be found to measure the source domain") from exc
    if len(keys) > SOURCE_IMAGES:
        keys = sorted(np.random.default_rng(seed).permutation(keys)[:SOURCE_IMAGES].tolist())
    images = read_images(keys, run.preprocessing, emit, "reading the run's training images")
    if len(images.keys) < min(MIN_IMAGES, len(keys)) or len(images.keys) < len(keys) / 2:
        missing = images.left_out[0] if images.left_out else ("", "")
        raise AdaptError(
            f"only {len(images.keys)} of the run's {len(keys)} training images can be read "
            f"(e.g. {missing[0]}: {missing[1]}). Adapting measures what each layer saw at "
            "the source from them: put them back where the run found them.")
    parts = np.random.default_rng(seed).permutation(len(images.keys)) % SOURCE_PARTS
    return moment_sums(run.model, images.squares, run.preprocessing, setup, batch_size,
                       parts), len(images.keys)


# --- the request -----------------------------------------------------------------------------

def adapt(run_dir: str | Path, images: str | Path, out_dir: str | Path,
          labels: str | Path | None = None, method: str = DEFAULT_METHOD,
          domain: str | None = None, device: str = "auto", batch_size: int = 32,
          emit: Emit | None = None, seed: int = 0) -> dict:
    """Adapt the run to the images in ``images`` and write a new run into ``out_dir``;
    returns the ``adaptation`` block its metrics.json holds."""
    emit = emit or (lambda _event: None)
    known, left_out = check_request(run_dir, images, out_dir, labels, method)
    setup = pick_device(device)  # an unusable device is refused before slow work too
    run = load_run(run_dir)
    if not has_batch_norm(run.model):
        raise AdaptError(
            f"{run.config['backbone']['display_name']} has no BatchNorm layers: it normalises "
            "each image by itself (LayerNorm), so it keeps no statistics of a domain to "
            "adapt, and no adaptation method is available for it. Label a few hundred images "
            "of the new domain and fine-tune on them instead.")
    prep = run.preprocessing
    target = read_images([images, *sorted(set(known) - _keys_under(images, known))], prep,
                         emit, limit=TARGET_IMAGES, keep=set(known), seed=seed)
    left_out += target.left_out
    known = _per_frame(known, target.keys)
    unread = set(known) - set(target.keys) - {k for k, _ in target.left_out}
    left_out += [(k, "labeled, but not among the images read (a hidden folder, not an image "
                     "file, or another frame)") for k in sorted(unread)]
    if len(target.keys) < MIN_IMAGES:
        raise AdaptError(f"only {len(target.keys)} readable images in '{images}'; adapting "
                         f"needs at least {MIN_IMAGES} of the new domain")
    run.model.to(setup.device)
    emit(StageProgress("measuring the source domain", 0, 1))
    kept = source_domain.load(run.dir)  # kept with the run since training
    # a run from before: measured on its training images, if they are still there
    sums, source_count = kept or source_statistics(run, setup, batch_size, emit, seed)
    source = combine(sums)
    emit(StageProgress("measuring the source domain", 1, 1))
    detector = run.ood
    emit(StageProgress("measuring the shift before adapting", 0, 1))
    target_moments = input_moments(run.model, target.squares, prep, setup, batch_size)
    before = {"stages": _stages(shift_by_stage(run.model, target_moments)),
              "ood_flagged": _ood_rate(run.model, detector, target.squares, prep, setup,
                                       batch_size)}
    before["shift"] = _mean(before["stages"])
    reference = _mean(_stages(shift_by_stage(run.model, source)))
    difference = distance(target_moments, source)
    by_luck = sampling_noise(sums, len(target.keys) / source_count, seed=seed)
    changed = not difference <= NOISE_MARGIN * by_luck  # nan (too few parts): adapt
    emit(StageProgress("measuring the shift before adapting", 1, 1))
    if changed:
        emit(StageProgress(f"adapting ({method})", 0, 1))
        model = adapted_model(run, source, target.squares, method, setup, batch_size, seed)
        bad = [k for k, v in model.state_dict().items()
               if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:  # never a model that answers NaN
            raise AdaptError(f"adapting produced non-finite numbers (e.g. in {bad[0]}); "
                             "nothing was written. Check the new images (blank or corrupt "
                             "ones) or use --method statistics.")
        emit(StageProgress(f"adapting ({method})", 1, 1))
        emit(StageProgress("measuring the shift after adapting", 0, 1))
        after = _measures(model, detector, target.squares, prep, setup, batch_size)
        emit(StageProgress("measuring the shift after adapting", 1, 1))
    else:
        model, after = run.model, before
    block = {
        "source_run": str(Path(run_dir).resolve()), "source_name": Path(run_dir).name,
        "method": method, "method_words": METHODS[method],
        "domain": domain or Path(images).expanduser().resolve().name,
        "images": len(target.keys), "images_found": target.found,
        "source_images": source_count,
        "left_out": [{"path": k, "reason": r} for k, r in left_out],
        "shift": {"source": reference, "before": before["shift"], "after": after["shift"],
                  "stages_before": before["stages"], "stages_after": after["stages"]},
        "difference": {"from_source": difference, "by_luck": by_luck,
                       "changed": bool(changed)},
        "ood_flagged": {"before": before["ood_flagged"], "after": after["ood_flagged"]},
        "kept": "adapted" if changed else "source", "accuracy": "unverified",
    }
    labeled = None
    if known:
        emit(StageProgress("scoring the labeled images", 0, 1))
        labeled = _score_labels(run, model, target, known, setup, batch_size, seed)
        block.update(labeled["summary"])
    if not changed:
        block["kept_because"] = ("no change of domain beyond what a sample of the source's "
                                 "own images shows by luck")
    elif block["kept"] == "source":
        block["kept_because"] = "adapting lowered accuracy on the labeled new-domain images"
    emit(StageProgress("writing the new run", 0, 1))  # the last moment Stop can act
    # no event after the write: a Stop raised there would call a written run unwritten
    _write_run(run, model if block["kept"] == "adapted" else run.model, out_dir, block,
               labeled)
    return block


def _per_frame(known: dict[str, int], keys: list[str]) -> dict[str, int]:
    """Labels given per file apply to each of its frames read on their own (runs trained
    on every frame of multi-frame DICOMs)."""
    out = dict(known)
    for key in keys:
        if key not in out:
            file, frame = parse_image_key(key)
            if frame is not None and str(file) in known:
                out[key] = known[str(file)]
    return out


def _keys_under(images: str | Path, known: dict[str, int]) -> set[str]:
    """The labeled keys the images folder already holds (read once, not twice)."""
    root = Path(images).expanduser().resolve()
    return {k for k in known if parse_image_key(k)[0].is_relative_to(root)}


def _score_labels(run: LoadedRun, model, target: Images, known: dict[str, int],
                  setup: DeviceSetup, batch_size: int, seed: int) -> dict:
    rows = [k for k, key in enumerate(target.keys) if key in known]
    if not rows:
        raise AdaptError("none of the labeled images could be read (see the files not used)"
                         + "".join(f"; {k}: {r}" for k, r in target.left_out[:3]))
    squares = target.squares[rows]
    y = np.array([known[target.keys[k]] for k in rows], dtype=np.int64)
    decision, prep = run.decision, run.preprocessing
    probs_before, _ = predict_with_features(run.model, squares, prep, setup, batch_size)
    probs_after, _ = predict_with_features(model, squares, prep, setup, batch_size)
    before = report(probs_before, y, run.classes, decision, seed=seed)
    after = report(probs_after, y, run.classes, decision, seed=seed)
    right_before = decision.call(decision.calibrate(probs_before)) == y
    right_after = decision.call(decision.calibrate(probs_after)) == y
    gain = _accuracy_gain(right_before, right_after, seed)
    kept = ("adapted" if model is not run.model and right_after.mean() >= right_before.mean()
            else "source")
    summary = {
        "accuracy": "measured", "labeled": len(rows), "kept": kept,
        "before": {"accuracy": before["accuracy"], "accuracy_ci": before["accuracy_ci"]},
        "after": {"accuracy": after["accuracy"], "accuracy_ci": after["accuracy_ci"]},
        **gain,
    }
    chosen = after if kept == "adapted" else before
    probs = probs_after if kept == "adapted" else probs_before
    return {"summary": summary, "report": chosen, "keys": [target.keys[k] for k in rows],
            "targets": y, "probabilities": probs}


def _write_run(run: LoadedRun, model, out_dir: str | Path, block: dict,
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
    calls = decision.call(calibrated)
    for key, y, p, call in zip(labeled["keys"], labeled["targets"], calibrated, calls,
                               strict=True):
        rows.append([ADAPTED_PART, key, run.classes[int(y)], run.classes[int(call)],
                     f"{float(p[int(call)]):.6f}", *[f"{float(v):.6f}" for v in p]])
    text = io.StringIO()
    csv.writer(text).writerows([["part", "path", "label", "predicted", "confidence",
                                 *[f"p_{c}" for c in run.classes]], *rows])
    write_atomic(partial / PREDICTIONS, text.getvalue())


# --- in words (the CLI, the studio and the report say the same) --------------------------

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
