"""``torchrun --nproc-per-node 2 -m tlstudio train ... --device cpu``: two processes (gloo)
share one training on the Br35H sample. One run folder, each epoch logged once, the accuracy
of a single process, and a kill -9 of the whole launch continued with ``--resume`` under
torchrun again."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tlstudio.core.engine.distributed import World

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2"]
# a fine-tune of the last stage over frozen-layer outputs computed in shares and gathered
# (one view of each image: no augmentation keeps the test short)
FINE_TUNE = ["--mode", "fine-tune", "--freeze", "last-1", "--epochs", "4", "--seed", "0",
             "--device", "cpu", "--no-compare-scratch", "--augmentation", "none"]


def _env() -> dict:
    # one thread per process: two processes on two cores
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")


def _torchrun(*args, timeout=900) -> subprocess.CompletedProcess:
    return subprocess.run([*TORCHRUN, "-m", "tlstudio", *map(str, args)], capture_output=True,
                          text=True, env=_env(), timeout=timeout)


def _epochs(run: Path) -> list[int]:
    log = run / "metrics.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.strip()]


def _family(pid: int) -> list[int]:
    """``pid`` and every process below it (torchrun starts each worker in a session of its
    own, so killing the launcher's process group would miss them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    family, todo = [], [pid]
    while todo:
        family.append(todo.pop())
        todo += children.get(family[-1], [])
    return family


def _held_out_accuracy(run: Path) -> float:
    """Accuracy over every held-out image the run scored (validation and test: 92 images of
    the sample, so one image is 1.1 points)."""
    with open(run / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sum(r["label"] == r["predicted"] for r in rows) / len(rows)


def _logged(text: str, epoch: int) -> int:
    """How many times ``epoch`` was printed."""
    return sum(line.startswith(f"epoch {epoch}/") for line in text.splitlines())


def test_shares_cover_every_image_once_and_reshuffle():
    order = torch.randperm(11, generator=torch.Generator().manual_seed(0))
    shards = [World(rank, 3).shard(order) for rank in range(3)]
    assert {len(s) for s in shards} == {4}  # equal steps for every process
    assert set(torch.cat(shards).tolist()) == set(range(11))  # 12 places: one repeats
    rows = [World(rank, 3).rows(11) for rank in range(3)]
    assert rows == [(0, 4), (4, 8), (8, 11)]
    assert World(0, 4).batch_size(32) == 8 and World(0, 1).batch_size(32) == 32


@pytest.mark.slow
def test_linear_probe_under_torchrun_matches_one_process(br35h_csv, br35h_probe_run, tmp_path):
    run = tmp_path / "lp"
    done = _torchrun("train", "--data", br35h_csv, "--out", run, "--mode", "linear-probe",
                     "--backbone", "efficientnet_lite0", "--seed", "0", "--device", "cpu")
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in tmp_path.iterdir()] == ["lp"]  # one run folder
    metrics = json.loads((run / "metrics.json").read_text())
    epochs = metrics["epochs_run"]
    assert _epochs(run) == list(range(1, epochs + 1))
    assert all(_logged(done.stderr, e) == 1 for e in range(1, epochs + 1))
    assert done.stdout.count("HELD-OUT TEST") == 1  # the results, printed by rank 0 alone
    assert abs(_held_out_accuracy(run) - _held_out_accuracy(br35h_probe_run)) <= 0.02
    assert metrics["test_accuracy"] >= 0.85


@pytest.mark.slow
def test_fine_tune_under_torchrun_survives_kill_9_and_resumes(br35h_csv, tmp_path):
    alone = tmp_path / "alone"
    single = subprocess.run([sys.executable, "-m", "tlstudio", "train", "--data",
                             str(br35h_csv), "--out", str(alone), *FINE_TUNE],
                            capture_output=True, text=True, env=_env(), timeout=900)
    assert single.returncode == 0, single.stderr[-3000:]

    run = tmp_path / "shared"
    launch = subprocess.Popen(
        [*TORCHRUN, "-m", "tlstudio", "train", "--data", str(br35h_csv), "--out", str(run),
         *FINE_TUNE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    deadline = time.monotonic() + 600
    while len(_epochs(run)) < 2:
        assert launch.poll() is None, launch.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no second epoch in 10 minutes"
        time.sleep(0.05)
    for pid in _family(launch.pid):  # the machine goes down: nothing can clean up
        os.kill(pid, signal.SIGKILL)
    _, first_log = launch.communicate(timeout=60)
    time.sleep(1)  # the workers' last gasp, if any, would land now
    assert 2 <= len(_epochs(run)) < 4 and not (run / "metrics.json").exists()

    resumed = _torchrun("train", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stderr.count("resuming shared after epoch") == 1
    assert _epochs(run) == [1, 2, 3, 4]  # each epoch once in the run's log...
    for epoch in range(1, 5):  # ...and printed once, by rank 0, before or after the kill
        assert _logged(first_log, epoch) + _logged(resumed.stderr, epoch) == 1, epoch
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone", "shared"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["cancelled"] is False and metrics["epochs_run"] == 4
    assert abs(_held_out_accuracy(run) - _held_out_accuracy(alone)) <= 0.02
    assert metrics["test_accuracy"] >= 0.85


def test_one_call_refuses_a_held_folder_before_starting_any_process(tmp_path):
    """The studio's GPUs choice and `tlstudio train --processes N` start torchrun as a
    child (tests/gui/test_training_thread.py trains that way); a folder that already holds
    a run is refused at once, and said to the listeners, before any process starts."""
    from tlstudio.core.data.synthetic import make_shapes_folder
    from tlstudio.core.engine import events as ev
    from tlstudio.core.engine.config import TrainConfig
    from tlstudio.core.runs.launch import train_in_processes
    from tlstudio.core.runs.training import TrainingError

    data = make_shapes_folder(tmp_path / "shapes", per_class=4)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("{}")
    seen: list = []
    started = time.monotonic()
    with pytest.raises(TrainingError, match="already holds a run"):
        train_in_processes(2, TrainConfig(device="cpu"), str(data), tmp_path / "run",
                           [seen.append])
    assert time.monotonic() - started < 5  # no launcher was started
    assert isinstance(seen[-1], ev.Failed) and "already holds a run" in seen[-1].message
