"""Write a class-folder dataset of Fashion-MNIST images for benchmarks (the second real dataset).

Reads the IDX files of Debian's ``dataset-fashion-mnist`` package
(``apt-get install dataset-fashion-mnist``: /usr/share/datasets/fashion-mnist) and writes
``--per-class`` PNGs of each of the ten classes, drawn with a seed from the training file,
into ``OUT/<class>/``. Nothing is downloaded.

    python scripts/fashion_mnist.py /tmp/fmnist-2000 --per-class 200
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle-boot"]


def read_idx(path: Path) -> np.ndarray:
    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--part", choices=["train", "t10k"], default="train")
    args = parser.parse_args(argv)
    images_file = SOURCE / f"{args.part}-images-idx3-ubyte.gz"
    if not images_file.exists():
        print(f"{images_file} not found: apt-get install dataset-fashion-mnist",
              file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()):
        print(f"{args.out} is not empty", file=sys.stderr)
        return 2
    images = read_idx(images_file)
    labels = read_idx(SOURCE / f"{args.part}-labels-idx1-ubyte.gz")
    rng = np.random.default_rng(args.seed)
    for k, name in enumerate(CLASSES):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        chosen = rng.choice(np.flatnonzero(labels == k), args.per_class, replace=False)
        for i in chosen:
            Image.fromarray(images[i]).save(folder / f"{args.part}-{i:05d}.png")
    print(f"{args.per_class * len(CLASSES)} images in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
