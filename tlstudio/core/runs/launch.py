"""One training shared by several processes, started from one call: the studio's "GPUs"
choice and ``tlstudio train --processes N``.

torchrun is started as a child (``python -m torch.distributed.run --standalone``) running
``tlstudio train --events`` with the run's settings in a file; its first process writes the
run folder as usual and prints each training event as a line of JSON, which is passed on to
the listeners here exactly as an in-process training would send them. A stop sends Ctrl-C
to the launcher, which passes it to every process: they stop at the same step and save.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import torch

from ...errors import UserError
from ..engine.config import TrainConfig
from ..engine.events import Control, Failed, Finished, Listener, from_line
from ..paths import app_data_dir
from .record import METRICS
from .training import TrainingError, TrainResult, _check_new_out_dir

# after Stop the first process still scores the best epoch and writes the results: the
# launcher waits for that instead of killing it after its default 30 s
LAUNCHER = [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--shutdown-timeout", "3600"]


def gpu_count() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def can_launch() -> str | None:
    """None when this installation can start processes with torchrun, else why not."""
    if getattr(sys, "frozen", False):
        return ("the packaged app trains in one process; for several GPUs install tlstudio "
                "with pip and use torchrun (README: Outgrowing one machine)")
    return None


def train_in_processes(
    processes: int, config: TrainConfig | None, data: str | None, out_dir: str | Path,
    listeners: Iterable[Listener] = (), control: Control | None = None,
    resume: bool = False, device: str | None = None,
) -> TrainResult:
    """Train (or with ``resume``, continue the run in ``out_dir``) as ``processes``
    processes of one torchrun launch; returns when the launch has ended."""
    listeners, control, out_dir = list(listeners), control or Control(), Path(out_dir)
    try:
        why_not = can_launch()
        if why_not:
            raise TrainingError(why_not)
        if processes < 2:
            raise TrainingError(f"several processes means at least 2, not {processes}")
        if not resume:
            config.resolved()  # a wrong setting or folder is said before processes start
            _check_new_out_dir(out_dir, data)
    except (UserError, ValueError) as exc:
        for listener in listeners:
            listener(Failed(str(exc)))
        raise
    settings = None
    args = ["--resume", str(out_dir), *(["--device", device] if device else [])]
    if not resume:
        folder = app_data_dir() / "launch"
        folder.mkdir(parents=True, exist_ok=True)
        fd, settings = tempfile.mkstemp(prefix="settings-", suffix=".json", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(asdict(config), fh)
        args = ["--settings", settings, "--data", str(data), "--out", str(out_dir)]
    command = [*LAUNCHER, "--nproc-per-node", str(processes), "-m", "tlstudio", "train",
               *args, "--events"]
    try:
        return _follow(command, out_dir, listeners, control)
    finally:
        if settings is not None:
            Path(settings).unlink(missing_ok=True)


def _follow(command: list[str], out_dir: Path, listeners: list[Listener],
            control: Control) -> TrainResult:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env, start_new_session=True)
    errors: deque[str] = deque(maxlen=40)  # the end of what the processes said on stderr
    reader = threading.Thread(target=lambda: errors.extend(child.stderr), daemon=True)
    reader.start()
    stopper = threading.Thread(target=_stop_when_asked, args=(child, control), daemon=True)
    stopper.start()
    finished = failed = None
    try:
        for line in child.stdout:
            event = from_line(line)
            if event is None:
                continue
            if isinstance(event, Finished):
                finished = event
            if isinstance(event, Failed):
                failed = event
            for listener in listeners:
                listener(event)
        code = child.wait()
    finally:  # interrupted here (a second Ctrl-C, a listener's error): no orphans left
        if child.poll() is None:
            _end(child)
    reader.join(timeout=5)
    if failed is not None:
        raise TrainingError(failed.message)
    metrics_file = out_dir / METRICS
    if finished is None and not metrics_file.is_file():
        if control.stopped:
            return TrainResult(out_dir, {}, None, cancelled=True)
        said = "".join(errors).strip().splitlines()
        message = next((line for line in reversed(said) if line.startswith("tlstudio:")),
                       said[-1] if said else f"exit code {code}")
        for listener in listeners:
            listener(Failed(f"the training processes ended ({code}): {message}"))
        raise TrainingError(f"the training processes ended ({code}): {message}")
    metrics = finished.metrics if finished is not None else json.loads(
        metrics_file.read_text(encoding="utf-8"))
    return TrainResult(out_dir, metrics, None, cancelled=bool(metrics.get("cancelled")),
                       stopped_early=bool(metrics.get("stopped_early")),
                       epochs_run=int(metrics.get("epochs_run", 0)))


def _end(child: subprocess.Popen) -> None:
    """Ctrl-C to the launcher and its processes, then, if they linger, SIGKILL."""
    for sig, wait in ((signal.SIGINT, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_when_asked(child: subprocess.Popen, control: Control) -> None:
    """Ctrl-C to the launcher once Stop is pressed (it passes it to every process)."""
    while child.poll() is None:
        if control.stopped:
            try:
                child.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
            return
        threading.Event().wait(0.2)
