"""Peak memory of a linear probe and of a fine-tune on a generated dataset of N images
(BENCHMARKS.md, issue 17: 50,000 images under 3 GB).

Usage: python scripts/memory_bench.py OUT_DIR [--images 50000] [--epochs 1]
                                      [--modes linear-probe fine-tune]
Writes the images once (synthetic shapes, 10 classes by shape and colour) under OUT_DIR/data,
then runs `tlstudio train` in a child process per mode and reads its peak resident memory
(GNU time's maximum resident set size of the child) and wall time. Prints markdown rows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_images(folder: Path, n: int, side: int = 64, seed: int = 0) -> None:
    from PIL import Image, ImageDraw

    if (folder / "done").is_file():
        return
    rng = np.random.default_rng(seed)
    colours = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 200, 30), (150, 60, 200)]
    for k in range(n):
        cls = k % 10
        shape, colour = ("disc", "square")[cls // 5], colours[cls % 5]
        target = folder / f"{shape}-{cls % 5}"
        target.mkdir(parents=True, exist_ok=True)
        img = Image.new("RGB", (side, side), tuple(int(v) for v in rng.integers(0, 60, 3)))
        draw = ImageDraw.Draw(img)
        r = int(rng.integers(side // 6, side // 3))
        cx, cy = (int(v) for v in rng.integers(r, side - r, 2))
        box = (cx - r, cy - r, cx + r, cy + r)
        (draw.ellipse if shape == "disc" else draw.rectangle)(box, fill=colour)
        img.save(target / f"{k:06d}.png")
    (folder / "done").write_text("ok")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=["linear-probe", "fine-tune"],
                        default=["linear-probe", "fine-tune"],
                        help="measure these only (each takes about an hour at 50,000 images "
                             "on 2 CPU cores)")
    args = parser.parse_args()
    data = args.out / f"data-{args.images}"
    t0 = time.perf_counter()
    write_images(data, args.images)
    print(f"{args.images} images ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    print("| mode | images | epochs | peak RSS (MB) | wall (s) | exit |")
    print("|---|---|---|---|---|---|")
    extras = {"linear-probe": [], "fine-tune": ["--freeze", "last-1"]}
    for mode in args.modes:
        extra = extras[mode]
        run = args.out / f"run-{mode}-{args.images}"
        start = time.perf_counter()
        # /usr/bin/time reports each child's own peak (ru_maxrss of RUSAGE_CHILDREN would
        # be the largest of all children so far)
        report = args.out / f"rss-{mode}.txt"
        code = subprocess.call(
            ["/usr/bin/time", "-f", "%M", "-o", str(report),
             sys.executable, "-m", "tlstudio", "train", "--data", str(data), "--out", str(run),
             "--mode", mode, *extra, "--epochs", str(args.epochs), "--no-compare-scratch",
             "--device", "cpu"], stdout=subprocess.DEVNULL, env=dict(os.environ))
        peak = int(report.read_text().split()[-1]) / 1024
        print(f"| {mode} | {args.images} | {args.epochs} | {peak:.0f} | "
              f"{time.perf_counter() - start:.0f} | {code} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
