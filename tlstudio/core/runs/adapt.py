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
import json
from pathlib import Path

import numpy as np
import torch

from ..data.preprocess import Preprocessing
from ..engine.device import DeviceSetup, pick_device
from ..engine.events import StageProgress
from ..engine.inference import eval_inputs, predict_with_features
from ..evaluation.domain_shift import shift_by_stage, stage_shift
from ..evaluation.held_out import report
from ..evaluation.normalisation import (
    align,
    batch_norms,
    combine,
    distance,
    has_batch_norm,
    input_moments,
    moment_sums,
    sampling_noise,
)
from ..evaluation.uncertainty import Resampler, interval
from . import source_domain
from .adapt_output import write_run
from .adapt_request import (
    DEFAULT_METHOD,
    METHODS,
    MIN_IMAGES,
    TARGET_IMAGES,
    AdaptError,
    Emit,
    Images,
    check_request,
    keys_under,
    labeled_sample,
    per_frame,
    read_images,
)
from .history import LoadedRun, load_run

SOURCE_IMAGES = 1000  # training images that measure what each layer saw at the source
SOURCE_PARTS = 10  # random parts of them: how far a sample lies from the source by luck
NOISE_MARGIN = 1.5  # a change of domain is a difference this many times the largest by luck
ENTROPY_LR = 1e-3


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
    labeled_found = len(known)
    known = labeled_sample(known, seed)
    sampled = labeled_found > len(known)
    target = read_images([images, *sorted(set(known) - keys_under(images, known))], prep,
                         emit, limit=TARGET_IMAGES, keep=set(known), seed=seed)
    left_out += target.left_out
    known = per_frame(known, target.keys)
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
        if sampled:  # the labels named more images than were scored
            block["labeled_found"] = labeled_found
    if not changed:
        block["kept_because"] = ("no change of domain beyond what a sample of the source's "
                                 "own images shows by luck")
    elif block["kept"] == "source":
        block["kept_because"] = "adapting lowered accuracy on the labeled new-domain images"
    emit(StageProgress("writing the new run", 0, 1))  # the last moment Stop can act
    # no event after the write: a Stop raised there would call a written run unwritten
    write_run(run, model if block["kept"] == "adapted" else run.model, out_dir, block,
               labeled)
    return block


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
