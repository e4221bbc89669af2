"""Runs survive their process: kill -9, Ctrl-C or SIGTERM, then `tlstudio train --resume`
ends with exactly the files and numbers of a run that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import make_shapes_folder
from ..test_cli import tlstudio

# Fine-tune: the whole network on augmented images (order, augmentation and dropout all draw
# random numbers). Probe: many quick epochs of the head over cached features.
CASES = {
    "fine-tune": ["--mode", "fine-tune", "--freeze", "full", "--epochs", "4",
                  "--batch-size", "4", "--augmentation", "photo"],
    "linear-probe": ["--mode", "linear-probe", "--epochs", "40", "--batch-size", "1",
                     "--patience", "40"],
    # the probe first (not resumed: it reruns if killed), then the fine-tune from it, whose
    # epoch 0 is the probe
    "recommended": ["--mode", "recommended", "--epochs", "4", "--batch-size", "4",
                    "--patience", "4", "--no-compare-scratch"],
}
EPOCH_ROWS = {"fine-tune": list(range(1, 5)), "linear-probe": list(range(1, 41)),
              "recommended": list(range(0, 5))}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return make_shapes_folder(tmp_path_factory.mktemp("data") / "shapes", per_class=20)


def _env() -> dict:
    return dict(os.environ, HF_HUB_OFFLINE="1")


def _epochs(run: Path) -> list[int]:
    log = run / "metrics.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["epoch"] for line in log.read_text().splitlines() if line.strip()]


def _start(data: Path, out: Path, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tlstudio", "train", "--data", str(data), "--out", str(out),
         "--seed", "3", *CASES[mode]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())


def _wait_for_epoch(proc: subprocess.Popen, run: Path, epoch: int) -> None:
    deadline = time.monotonic() + 300
    while len(_epochs(run)) < epoch:
        assert proc.poll() is None, f"the run ended before epoch {epoch}: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no progress in 5 minutes"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def uninterrupted(shapes, tmp_path_factory) -> dict[str, dict]:
    """The reference: each mode trained once, start to end, with the same seed."""
    out = {}
    for mode in CASES:
        run = tmp_path_factory.mktemp("ref") / mode
        proc = _start(shapes, run, mode)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        out[mode] = json.loads((run / "metrics.json").read_text())
    return out


def _resume(run: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tlstudio", "train", "--resume", str(run)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env())


@pytest.mark.slow
# kill -9 in every mode; Ctrl-C is handled by the same code in every mode (the CLI's stop,
# the loop's checkpoint), so it is tested once: on the fine-tune resumed after its kill -9
@pytest.mark.parametrize(("mode", "signals"), [("fine-tune", ("SIGKILL", "SIGINT")),
                                               ("linear-probe", ("SIGKILL",)),
                                               ("recommended", ("SIGKILL",))],
                         ids=["fine-tune-SIGKILL-then-SIGINT", "linear-probe-SIGKILL",
                              "recommended-SIGKILL"])
def test_killed_or_interrupted_run_resumes_to_the_same_result(
        shapes, tmp_path, uninterrupted, mode, signals):
    run = tmp_path / "run"
    total = len(EPOCH_ROWS[mode])
    for k, how in enumerate(signals):
        proc = _start(shapes, run, mode) if k == 0 else _resume(run)
        before = len(_epochs(run))
        _wait_for_epoch(proc, run, before + (2 if k == 0 else 1))
        proc.send_signal(getattr(signal, how))
        _, err = proc.communicate(timeout=300)
        done = _epochs(run)
        assert before < len(done) < total, "the signal came too late to test anything"
        if k > 0:
            assert f"resuming run after epoch {EPOCH_ROWS[mode][before - 1]}" in err
        if how == "SIGKILL":
            assert proc.returncode == -signal.SIGKILL
            assert not (run / "metrics.json").exists()
        else:  # finished the batch, saved, wrote what a stopped run writes, said how to go on
            assert proc.returncode == 130, err
            assert "stopping after the current batch" in err
            assert f"tlstudio train --resume {run}" in err
            assert json.loads((run / "metrics.json").read_text())["cancelled"] is True
            assert (run / "predictions.csv").is_file()
        assert (run / "best.safetensors").is_file()  # the probe keeps its best head on disk

    resumed = tlstudio("train", "--resume", run)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming run after epoch" in resumed.stderr
    assert _epochs(run) == EPOCH_ROWS[mode]  # each epoch once
    for name in ("metrics.json", "predictions.csv", "best.safetensors", "config.json",
                 "split.json"):
        assert (run / name).is_file(), name
    final = json.loads((run / "metrics.json").read_text())
    reference = uninterrupted[mode]
    assert final["cancelled"] is False
    assert final["val_accuracy"] == reference["val_accuracy"]
    assert final["val_loss"] == pytest.approx(reference["val_loss"], rel=1e-6)
    assert final["best_epoch"] == reference["best_epoch"]

    again = tlstudio("train", "--resume", run)
    assert again.returncode == 2 and "already finished" in again.stderr


@pytest.mark.slow
def test_one_process_per_run_folder_and_no_raw_errors_on_a_killed_run(shapes, tmp_path):
    run = tmp_path / "run"
    first = _start(shapes, run, "fine-tune")
    _wait_for_epoch(first, run, 1)
    second = tlstudio("train", "--data", shapes, "--out", run, "--epochs", "1")
    assert second.returncode == 2
    assert "is in use" in second.stderr and str(first.pid) in second.stderr
    busy = tlstudio("train", "--resume", run)
    assert busy.returncode == 2 and "is in use" in busy.stderr
    first.kill()
    first.wait(60)

    exported = tlstudio("export", "--run", run, "--out", tmp_path / "export")
    assert exported.returncode == 2
    assert f"tlstudio train --resume {run}" in exported.stderr
    assert not (tmp_path / "export").exists()
    again = tlstudio("train", "--data", shapes, "--out", run, "--epochs", "1")
    assert again.returncode == 2 and "already holds a run (interrupted)" in again.stderr
    assert "--resume" in again.stderr
