"""Per-epoch jobs as callbacks on the one training loop (skorch/Lightning style).

The loop calls every callback at the same points, in list order; a callback that keeps state
(the best score, the early-stopping counter) gives it back through ``state_dict`` so a
resumed run goes on exactly where it stopped. The engine's own callbacks live here; the run
record's (``runs/recorder.py``: metrics log, best checkpoint, resume state) plug in the same
way, and the CLI progress bar, the GUI worker and the tests listen to the events
:class:`ProgressEvents` sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .events import BatchDone, EpochDone, EpochStarted, Event, Notice

if TYPE_CHECKING:
    from .loop import TrainingSession

PROGRESS_INTERVAL_S = 0.1  # batch progress (and its host sync) at most ten times a second


@dataclass
class EpochResult:
    """What one epoch measured. Epoch 0 is the starting point (no training loss)."""

    epoch: int
    train_loss: float | None
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float
    improved: bool = False

    def row(self) -> dict:
        row = {"epoch": self.epoch, "train_loss": self.train_loss, "val_loss": self.val_loss,
               "val_accuracy": self.val_accuracy, "lr": self.lr, "seconds": self.seconds,
               "improved": self.improved}
        return {k: v for k, v in row.items() if v is not None}


class Callback:
    """Hooks of the loop; override what you need. ``name`` keys the saved state."""

    name = ""

    def on_fit_start(self, session: TrainingSession) -> None: ...

    def on_epoch_start(self, session: TrainingSession, epoch: int) -> None: ...

    def on_batch_end(self, session: TrainingSession, epoch: int, batch: int, batches: int,
                     loss: torch.Tensor, seen: int) -> None: ...

    def on_epoch_end(self, session: TrainingSession, result: EpochResult) -> None: ...

    def on_fit_end(self, session: TrainingSession) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class BestScore(Callback):
    """Marks an epoch ``improved`` when validation accuracy rises (ties: lower loss)."""

    name = "best"

    def __init__(self) -> None:
        self.best: tuple[float, float] | None = None  # (accuracy, -loss)
        self.epoch = 0

    def on_epoch_end(self, session, result: EpochResult) -> None:
        score = (result.val_accuracy, -result.val_loss)
        if self.best is None or score > self.best:
            self.best, self.epoch = score, result.epoch
            result.improved = True

    def state_dict(self) -> dict:
        return {"best": list(self.best) if self.best else None, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best = tuple(state["best"]) if state["best"] else None
        self.epoch = state["epoch"]


class EarlyStopping(Callback):
    """Stops the loop after ``patience`` epochs without improvement (after BestScore)."""

    name = "early_stopping"

    def __init__(self, patience: int, emit: Callable[[Event], None]):
        self.patience, self.emit = patience, emit
        self.waited = 0

    def on_epoch_end(self, session, result: EpochResult) -> None:
        if result.epoch == 0:
            return
        self.waited = 0 if result.improved else self.waited + 1
        if self.waited >= self.patience and result.epoch < session.epochs:
            session.stop_early = True
            self.emit(Notice(f"stopped early: no improvement for {self.patience} epochs"))

    def state_dict(self) -> dict:
        return {"waited": self.waited}

    def load_state_dict(self, state: dict) -> None:
        self.waited = state["waited"]


class ProgressEvents(Callback):
    """Epoch and (throttled) batch events for every listener; the loss is read back from
    the device only when an event goes out."""

    name = "progress"

    def __init__(self, emit: Callable[[Event], None]):
        self.emit = emit
        self._t0 = self._last = 0.0

    def on_epoch_start(self, session, epoch: int) -> None:
        self._t0, self._last = time.perf_counter(), 0.0
        self.emit(EpochStarted(epoch, session.epochs))

    def on_batch_end(self, session, epoch, batch, batches, loss, seen) -> None:
        now = time.perf_counter()
        if batch == batches or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            # under torchrun every process sees as many images as this one
            images = seen * session.setup.world.size
            self.emit(BatchDone(epoch, batch, batches, float(loss.item()),
                                images / max(1e-9, now - self._t0)))

    def on_epoch_end(self, session, r: EpochResult) -> None:
        if r.epoch == 0:
            self.emit(Notice(f"starting point: validation accuracy {r.val_accuracy:.3f}"))
        else:
            self.emit(EpochDone(r.epoch, session.epochs, r.train_loss, r.val_loss,
                                r.val_accuracy, r.lr, r.seconds, r.improved))
