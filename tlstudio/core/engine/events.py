"""Training events and the stop/pause control: the one stream every listener shares.

The loop's callbacks (``callbacks.ProgressEvents``) and the run orchestration send plain
dataclasses to each listener; the GUI worker turns them into Qt signals, the CLI into a
progress bar, tests into assertions. The run record does not listen here: it is a callback
on the loop itself (``runs/recorder.py``), since it needs the training state, not a summary.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class StageProgress:
    """Work before or between epochs: decoding images, computing frozen features."""

    stage: str
    done: int
    total: int


@dataclass(frozen=True)
class EpochStarted:
    epoch: int  # 1-based
    epochs: int


@dataclass(frozen=True)
class BatchDone:
    epoch: int
    batch: int  # 1-based within the epoch
    batches: int
    loss: float
    images_per_s: float


@dataclass(frozen=True)
class EpochDone:
    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    improved: bool


@dataclass(frozen=True)
class Finished:
    run_dir: str
    metrics: dict = field(default_factory=dict)
    stopped_early: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class Failed:
    message: str


@dataclass(frozen=True)
class Notice:
    """Something worth telling the user that is not an error (a skipped file, early stop)."""

    message: str


Event = StageProgress | EpochStarted | BatchDone | EpochDone | Finished | Failed | Notice
Listener = Callable[[Event], None]
KINDS = {k.__name__: k for k in (StageProgress, EpochStarted, BatchDone, EpochDone, Finished,
                                 Failed, Notice)}


def to_line(event: Event) -> str:
    """One event as one line of JSON (``tlstudio train --events``: a training in other
    processes tells the studio what it does)."""
    return json.dumps({"event": type(event).__name__, **asdict(event)}, default=str)


def from_line(line: str) -> Event | None:
    """The event on a line written by :func:`to_line`; None for any other line."""
    try:
        data = json.loads(line)
        kind = KINDS[data.pop("event")]
        return kind(**{f.name: data[f.name] for f in fields(kind) if f.name in data})
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


class Cancelled(Exception):
    """Raised inside the loop when the user pressed Stop (or the process got SIGINT/TERM)."""


class Control:
    """Stop and pause, set from any thread and checked by the trainer between batches."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()  # a paused trainer must wake up to notice the stop

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def checkpoint(self) -> None:
        """Block while paused; raise :class:`Cancelled` once stop was asked."""
        self._running.wait()
        if self._stop.is_set():
            raise Cancelled()

    def step(self) -> None:
        """The checkpoint before each training step (where processes sharing a training
        agree: ``distributed.AgreedControl``)."""
        self.checkpoint()
