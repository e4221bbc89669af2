"""Domain adaptation benchmark (BENCHMARKS.md, "Domain adaptation", issue 19).

Usage: python scripts/adapt_bench.py RUN_DIR OUT_DIR [--methods statistics entropy]
Takes the run's held-out images (validation and test), writes each simulated domain change
of them under OUT_DIR/<shift>/<class>/ with a labels.csv, runs `tlstudio adapt` per method
with those labels and prints one markdown row per shift: accuracy before and after (95 %
intervals, bootstrap over images), the OOD rate and the shift before and after.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from tlstudio.core.studies.simulated_domains import benchmark_changes, write_domain


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--methods", nargs="+", default=["statistics", "entropy"])
    args = parser.parse_args()
    rows = []
    with open(args.run / "predictions.csv", newline="") as fh:
        rows = [(r["path"], r["label"]) for r in csv.DictReader(fh)
                if r["part"] in ("val", "test")]
    print("| change | images | method | accuracy before | accuracy after | gain (95 % CI) "
          "| unfamiliar before → after | shift before → after (source) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, (name, change) in enumerate(benchmark_changes().items()):
        folder = args.out / f"domain-{k}"
        labels = write_domain(folder, rows, change)
        for method in args.methods:
            out = args.out / f"run-{k}-{method}"
            if not (out / "metrics.json").is_file():
                done = subprocess.run(
                    [sys.executable, "-m", "tlstudio", "adapt", "--run", str(args.run),
                     "--images", str(folder / "images"), "--labels", str(labels),
                     "--out", str(out), "--method", method, "--json"],
                    capture_output=True, text=True)
                if done.returncode != 0:
                    print(f"| {name} | {len(rows)} | {method} | failed: "
                          f"{done.stderr.strip().splitlines()[-1]} |||||")
                    continue
            b = json.loads((out / "metrics.json").read_text())["adaptation"]

            def ci(part):
                return (f"{part['accuracy']:.1%} ({part['accuracy_ci'][0]:.1%}–"
                        f"{part['accuracy_ci'][1]:.1%})")

            ood = b["ood_flagged"]
            print(f"| {name} | {b['labeled']} | {method} | {ci(b['before'])} | "
                  f"{ci(b['after'])} | {b['gain'] * 100:+.1f} ({b['gain_ci'][0] * 100:+.1f} "
                  f"to {b['gain_ci'][1] * 100:+.1f}) | {ood['before']:.0%} → "
                  f"{ood['after']:.0%} | {b['shift']['before']:.2f} → "
                  f"{b['shift']['after']:.2f} ({b['shift']['source']:.2f}) |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
