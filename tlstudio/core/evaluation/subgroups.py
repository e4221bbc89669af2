"""Results per subgroup: do the numbers hold for every scanner, site, sex or age band?

Pretrained features carry the biases of their pretraining data, and a small dataset can hide
a group the model fails on inside a good average. Each attribute (a further CSV column, or
DICOM header values such as the scanner's maker or the patient's sex) splits the evaluated
images; each value gets its own count and metrics with 95 % intervals, under the run's
frozen decision. Only counts and rates are reported, never which file had which value.
"""

from __future__ import annotations

import numpy as np

from .uncertainty import with_intervals

MAX_VALUES = 12  # more distinct values than this: an identifier or free text, not a subgroup


def subgroup_metrics(calibrated: np.ndarray, targets: np.ndarray, predicted: np.ndarray,
                     classes: list[str], attributes: list[dict[str, str]], groups=None,
                     replicates: int = 1000, seed: int = 0) -> dict:
    """``{attribute: {value: {n, accuracy, accuracy_ci, balanced_accuracy, ...}}}`` for
    attributes with 2..MAX_VALUES values, each value seen on at least one image."""
    targets, predicted = np.asarray(targets), np.asarray(predicted)
    names = sorted({k for row in attributes for k in row})
    out: dict = {}
    for name in names:
        values = [row.get(name, "") or "(not given)" for row in attributes]
        distinct = sorted(set(values))
        if not 2 <= len(distinct) <= min(MAX_VALUES, max(2, len(values) // 2)):
            continue
        out[name] = {}
        for value in distinct:
            inside = np.array([v == value for v in values])
            part_groups = None if groups is None else [g for g, i in zip(groups, inside,
                                                                         strict=True) if i]
            block = with_intervals(calibrated[inside], targets[inside], predicted[inside],
                                   classes, part_groups, replicates, seed)
            row = {"n": block["n"], "accuracy": block["accuracy"],
                   "accuracy_ci": block["accuracy_ci"],
                   "balanced_accuracy": block["balanced_accuracy"],
                   "balanced_accuracy_ci": block["balanced_accuracy_ci"]}
            if len(classes) == 2:
                positive = block["per_class"][classes[1]]
                row.update({k: positive[k] for k in ("sensitivity", "sensitivity_ci",
                                                      "specificity", "specificity_ci")})
            out[name][value] = row
    return out
