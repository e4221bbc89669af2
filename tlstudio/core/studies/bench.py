"""``tlstudio bench``: the engine against a plain hand-written PyTorch loop, on the same data.

Both train the same backbone with the same split, batch size, epochs and optimizer; runs
alternate (engine, reference, engine, ...) so neither gets a warmer machine. Reported per
side: images/s over the whole run (training images x epochs / wall time, decoding and
validation included), wall time, time to the end of the first epoch, peak memory and the
final validation accuracy; then their ratios. A last engine run on the same data shows the
warm start (its decoded-image cache already filled).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.dataset import DatasetIndex
from ..data.split import make_split
from ..engine.config import MODE_DEFAULTS, TrainConfig
from ..engine.device import pick_device
from ..engine.events import EpochDone
from ..models.backbones import get_spec
from ..runs.training import train

MODES = ("linear-probe", "fine-tune", "partial")


class PeakMemory:
    """Peak memory during a run: GPU allocator peak on CUDA, else resident set size."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(self.device)
        elif os.path.exists("/proc/self/statm"):
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated(self.device)
        else:
            self._stop.set()
        return False


@dataclass
class Side:
    wall_s: float
    first_epoch_s: float
    img_per_s: float
    val_accuracy: float
    peak_mb: float


@dataclass
class BenchSetup:
    index: DatasetIndex
    backbone: str
    mode: str
    epochs: int
    batch_size: int
    lr: float
    device: str
    seed: int
    val_fraction: float

    @property
    def train_size(self) -> int:
        return len(make_split(self.index, self.val_fraction, seed=self.seed).train)


def _engine(b: BenchSetup, cache_dir: Path) -> Side:
    index, mode, epochs, batch_size, lr = b.index, b.mode, b.epochs, b.batch_size, b.lr
    device, seed, val_fraction = b.device, b.seed, b.val_fraction
    epochs_done: list[float] = []
    config = TrainConfig(
        backbone=b.backbone, mode="linear-probe" if mode == "linear-probe" else "fine-tune",
        freeze="last-1" if mode == "partial" else "full", epochs=epochs, batch_size=batch_size,
        lr=lr, augmentation="none" if mode == "linear-probe" else "light", patience=epochs + 1,
        seed=seed, device=device, cache_dir=str(cache_dir), val_fraction=val_fraction,
        test_fraction=0.0,  # the reference loop holds no test part: the same images train
    )
    setup = pick_device(device)
    with tempfile.TemporaryDirectory() as out, PeakMemory(setup.device) as memory:
        start = time.perf_counter()
        result = train(config, index, Path(out) / "run", [
            lambda e: epochs_done.append(time.perf_counter()) if isinstance(e, EpochDone)
            else None])
        wall = time.perf_counter() - start
        sizes = json.loads((Path(out) / "run" / "config.json").read_text())["dataset"]
        if sizes["split_sizes"]["train"] != b.train_size:  # images/s must count the same
            raise RuntimeError(f"the engine trained on {sizes['split_sizes']['train']} images, "
                               f"the reference on {b.train_size}: not a fair comparison")
    return Side(wall, epochs_done[0] - start, b.train_size * epochs / wall,
                result.metrics["val_accuracy"], memory.peak / 2**20)


def _reference(b: BenchSetup) -> Side:
    from .bench_reference import run_reference

    index = b.index
    split = make_split(index, b.val_fraction, seed=b.seed)
    targets = index.targets()
    train_items = [(index.items[p].path, targets[p]) for p in split.train]
    val_items = [(index.items[p].path, targets[p]) for p in split.val]
    setup = pick_device(b.device)
    epochs_done: list[float] = []
    with PeakMemory(setup.device) as memory:
        start = time.perf_counter()
        out = run_reference(get_spec(b.backbone), train_items, val_items, len(index.classes),
                            b.mode, b.epochs, b.batch_size, b.lr, setup.device, b.seed,
                            on_epoch=lambda _e: epochs_done.append(time.perf_counter()))
        wall = time.perf_counter() - start
    return Side(wall, epochs_done[0] - start, len(train_items) * b.epochs / wall,
                out["val_accuracy"], memory.peak / 2**20)


def run_bench(index: DatasetIndex, backbone: str, mode: str, epochs: int = 5,
              batch_size: int = 32, lr: float | None = None, device: str = "auto",
              seed: int = 0, repeats: int = 1, val_fraction: float = 0.2,
              log=print) -> dict:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    lr = lr or MODE_DEFAULTS["linear-probe" if mode == "linear-probe" else "fine-tune"]["lr"]
    b = BenchSetup(index, get_spec(backbone).name, mode, epochs, batch_size, lr, device, seed,
                   val_fraction)
    setup = pick_device(device)
    engine_runs, reference_runs = [], []
    with tempfile.TemporaryDirectory() as cache:
        for r in range(repeats):
            cache_dir = Path(cache) / f"cold-{r}"  # every timed engine run starts cold
            log(f"[{r + 1}/{repeats}] engine ...")
            engine_runs.append(_engine(b, cache_dir))
            log(f"[{r + 1}/{repeats}] reference ...")
            reference_runs.append(_reference(b))
        log("engine again on the same data (warm cache) ...")
        warm = _engine(b, Path(cache) / "cold-0")

    def median(runs, field):
        return statistics.median(getattr(run, field) for run in runs)

    e_ips, r_ips = median(engine_runs, "img_per_s"), median(reference_runs, "img_per_s")
    result = {
        "backbone": b.backbone, "mode": mode, "epochs": epochs, "batch_size": batch_size,
        "lr": lr, "images": len(index.items), "repeats": repeats,
        "device": setup.description,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "engine_img_per_s": e_ips, "reference_img_per_s": r_ips, "ratio": e_ips / r_ips,
        "engine_wall_s": median(engine_runs, "wall_s"),
        "reference_wall_s": median(reference_runs, "wall_s"),
        "engine_first_epoch_s": median(engine_runs, "first_epoch_s"),
        "reference_first_epoch_s": median(reference_runs, "first_epoch_s"),
        "engine_warm_first_epoch_s": warm.first_epoch_s,
        "warm_start_speedup": median(engine_runs, "first_epoch_s") / warm.first_epoch_s,
        "engine_peak_mb": median(engine_runs, "peak_mb"),
        "reference_peak_mb": median(reference_runs, "peak_mb"),
        "engine_val_accuracy": median(engine_runs, "val_accuracy"),
        "reference_val_accuracy": median(reference_runs, "val_accuracy"),
    }
    result["accuracy_gap_points"] = 100 * (result["engine_val_accuracy"]
                                           - result["reference_val_accuracy"])
    return result


def format_report(r: dict) -> str:
    rows = [
        ("images/s (whole run)", r["engine_img_per_s"], r["reference_img_per_s"], "{:.1f}"),
        ("wall time, s", r["engine_wall_s"], r["reference_wall_s"], "{:.1f}"),
        ("time to first epoch, s", r["engine_first_epoch_s"], r["reference_first_epoch_s"],
         "{:.1f}"),
        ("peak memory, MB", r["engine_peak_mb"], r["reference_peak_mb"], "{:.0f}"),
        ("validation accuracy", r["engine_val_accuracy"], r["reference_val_accuracy"],
         "{:.3f}"),
    ]
    lines = [f"tlstudio bench: {r['backbone']} {r['mode']}, {r['epochs']} epochs, "
             f"{r['images']} images, batch {r['batch_size']}, {r['device']}",
             f"{'':<26}{'engine':>12}{'reference':>12}{'ratio':>9}"]
    for label, e, ref, fmt in rows:
        ratio = e / ref if ref else float("nan")
        lines.append(f"{label:<26}{fmt.format(e):>12}{fmt.format(ref):>12}{ratio:>8.2f}x")
    lines.append(f"engine speed-up over the reference: {r['ratio']:.2f}x; second run on the "
                 f"same data starts its first epoch {r['warm_start_speedup']:.1f}x sooner "
                 f"({r['engine_warm_first_epoch_s']:.1f} s)")
    return "\n".join(lines)
