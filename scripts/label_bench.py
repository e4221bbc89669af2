"""The labeling benchmarks of BENCHMARKS.md: active learning against random picking, and the
label review on flipped labels.

Usage: python scripts/label_bench.py [DATA] [--seeds 5] [--backbone efficientnet_lite0]
(DATA: a labeled folder or CSV, default the sample). Prints markdown rows.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np


def main() -> int:
    from tlstudio.core.data.dataset import scan
    from tlstudio.core.data.samples import sample_dataset
    from tlstudio.core.studies.active_learning import simulate
    from tlstudio.core.studies.advisor import backbone_features
    from tlstudio.core.studies.label_review import review

    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--budget", type=int, default=60)
    args = parser.parse_args()
    index = scan(args.data or sample_dataset())
    features, keep, _ = backbone_features(index, args.backbone, "cpu")
    targets = np.array(index.targets())[keep]

    curves = {}
    for strategy in ("uncertainty", "random"):
        runs = [simulate(features, targets, strategy, seed, budget=args.budget)
                for seed in range(args.seeds)]
        sizes = [n for n, _ in runs[0]]
        curves[strategy] = np.array([[a for _, a in run] for run in runs])
    print("| labels | " + " | ".join(str(n) for n in sizes) + " |")
    print("|---|" + "---|" * len(sizes))
    for strategy, values in curves.items():
        print(f"| {strategy} | " + " | ".join(
            f"{m * 100:.1f} ± {s * 100:.1f}" for m, s in zip(values.mean(0), values.std(0),
                                                            strict=True)) + " |")

    items = [it for it, k in zip(index.items, keep, strict=True) if k]
    found_share = []
    for seed in range(args.seeds):
        flip = set(np.random.default_rng(seed).choice(len(items), len(items) // 10,
                                                      replace=False).tolist())
        rng = np.random.default_rng(seed + 1000)
        noisy = []
        for k, it in enumerate(items):
            if k in flip:
                others = [c for c in index.classes if c != it.label]
                it = dataclasses.replace(it, label=str(rng.choice(others)))
            noisy.append(it)
        found = review(dataclasses.replace(index, items=noisy), features)
        top = {s.path for s in found[:int(0.15 * len(items))]}
        found_share.append(len(top & {items[k].key for k in flip}) / len(flip))
    print("\nflipped labels found in the review's top 15 %: "
          + ", ".join(f"{f * 100:.0f} %" for f in found_share)
          + f" (mean {np.mean(found_share) * 100:.0f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
