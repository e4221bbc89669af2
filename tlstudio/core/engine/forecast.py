"""Time left in a training, from the events it sends: the studio's and the CLI's "about
3:10 left".

A run is a row of steps: decoding images, frozen layers computed once (or the probe's
features), then the epochs, then the scoring of the best epoch on validation and test. A rate
measured in one step says nothing about another (a feature pass is not an epoch), so:

- during a step before the epochs, the estimate covers that step alone (``scope == "step"``)
  and comes once the step has run for a while;
- during the epochs it covers every epoch left plus the final scoring of this training
  (``scope == "run"``), from the measured time of whole epochs (training and validation) once
  one has ended, from the measured time per batch before that. Early stopping can end it
  sooner; a comparison from scratch or further folds come after it and are not included.

Paused time is not work time: :meth:`pause` and :meth:`resume` keep it out of every rate.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import events as ev

MIN_SECONDS = 2.0  # a rate measured over less time is noise: no estimate before it
EPOCHS_AVERAGED = 3  # the latest epochs: the first is often slower (warm-up, caches)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    scope: str  # "run": every epoch left and the final scoring; "step": this step alone


def clock_text(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` past an hour)."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe(estimate: Estimate | None) -> str:
    """The estimate in words, "" when there is none yet."""
    if estimate is None:
        return ""
    if estimate.scope == "step":
        return f"about {clock_text(estimate.seconds)} left in this step"
    return f"about {clock_text(estimate.seconds)} left in this training"


class Forecast:
    """Feed it every event of one run (``see``); ask ``estimate()`` at any time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()  # pause/resume come from another thread
        self._paused_since: float | None = None
        self._paused_total = 0.0
        self._phase: str | None = None  # "step" | "epochs" | None (nothing to forecast)
        # the step running now: name, when and where it started, its latest progress
        self._step: tuple[str, float, int] | None = None
        self._step_at: tuple[float, int, int] | None = None
        # the epochs: the current one, when it started, batch timing within it
        self._epoch: tuple[int, int, float] | None = None
        self._epoch_ended = False
        self._first_batch: tuple[float, int] | None = None
        self._last_batch: tuple[float, int, int] | None = None
        self._epoch_seconds: list[float] = []
        self._validation_seconds: float | None = None
        self._scoring_since: float | None = None  # when the steps after the epochs began

    # --- the work clock: wall time less the paused time ------------------------------------
    def _now(self) -> float:
        with self._lock:
            now = self._clock()
            paused = self._paused_total
            if self._paused_since is not None:
                paused += now - self._paused_since
        return now - paused

    def pause(self) -> None:
        with self._lock:
            if self._paused_since is None:
                self._paused_since = self._clock()

    def resume(self) -> None:
        with self._lock:
            if self._paused_since is not None:
                self._paused_total += self._clock() - self._paused_since
                self._paused_since = None

    @property
    def paused(self) -> bool:
        return self._paused_since is not None

    # --- events ----------------------------------------------------------------------------
    def see(self, event: ev.Event) -> None:
        now = self._now()
        if isinstance(event, ev.StageProgress):
            self._see_step(event, now)
        elif isinstance(event, ev.EpochStarted):
            if self._epoch is None or event.epoch <= self._epoch[0]:  # another training
                self._epoch_seconds, self._validation_seconds = [], None
            self._epoch = (event.epoch, event.epochs, now)
            self._epoch_ended, self._scoring_since = False, None
            self._first_batch = self._last_batch = None
            self._phase = "epochs"
        elif isinstance(event, ev.BatchDone):
            if self._first_batch is None:
                self._first_batch = (now, event.batch)
            self._last_batch = (now, event.batch, event.batches)
            self._phase = "epochs"
        elif isinstance(event, ev.EpochDone) and self._epoch is not None:
            self._epoch_seconds.append(now - self._epoch[2])
            if self._last_batch is not None:
                self._validation_seconds = now - self._last_batch[0]
            self._epoch = (event.epoch, event.epochs, self._epoch[2])
            self._epoch_ended = True
        elif isinstance(event, ev.Finished | ev.Failed):
            self._phase = None

    def _see_step(self, event: ev.StageProgress, now: float) -> None:
        if (self._step is None or self._step[0] != event.stage or self._step_at is None
                or event.done < self._step_at[1]):
            self._step = (event.stage, now, event.done)
            if event.total <= 1 and self._phase == "epochs" and self._epoch_ended:
                self._scoring_since = now  # the epochs are over: the final scoring begins
            elif event.total > 1:
                self._scoring_since = None
        self._step_at = (now, event.done, event.total)
        self._phase = "step"

    # --- the estimate ----------------------------------------------------------------------
    def estimate(self) -> Estimate | None:
        """Seconds left, or None while nothing meaningful can be said (too early, a step
        of one unit, between runs, paused)."""
        if self.paused:
            return None
        now = self._now()
        if self._phase == "step":
            return self._step_estimate(now)
        if self._phase == "epochs":
            return self._epochs_estimate(now)
        return None

    def _step_estimate(self, now: float) -> Estimate | None:
        if self._step is None or self._step_at is None:
            return None
        _, t0, done0 = self._step
        t, done, total = self._step_at
        if total <= 1:  # one unit: no rate; after the epochs, the scoring's measured share
            if self._scoring_since is None or self._validation_seconds is None:
                return None
            left = self._scoring_seconds() - (now - self._scoring_since)
            return Estimate(left, "run") if left >= 1 else None
        if done >= total or done <= done0 or t - t0 < MIN_SECONDS:
            return None  # finished (the next step says what comes), or too early
        rate = (done - done0) / (t - t0)
        return Estimate(max(0.0, (total - done) / rate - (now - t)), "step")

    def _scoring_seconds(self) -> float:
        # validation and test are scored once more at the end (about the same size each)
        return 2 * self._validation_seconds if self._validation_seconds is not None else 0.0

    def _epochs_estimate(self, now: float) -> Estimate | None:
        if self._epoch is None:
            return None
        epoch, epochs, started = self._epoch
        if self._epoch_seconds:
            recent = self._epoch_seconds[-EPOCHS_AVERAGED:]
            per_epoch = sum(recent) / len(recent)
            if self._epoch_ended:
                current = 0.0
            else:
                current = max(0.0, per_epoch - (now - started))
            left = current + (epochs - epoch) * per_epoch + self._scoring_seconds()
            return Estimate(left, "run")
        # the first epoch: the time per batch so far (validation not measured yet)
        if self._first_batch is None or self._last_batch is None:
            return None
        t0, b0 = self._first_batch
        t, batch, batches = self._last_batch
        if batch <= b0 or t - started < MIN_SECONDS:
            return None
        # the first batch's time counts from the epoch's start (it includes its own work)
        per_batch = (t - started) / batch
        left = (batches - batch) * per_batch + (epochs - epoch) * batches * per_batch
        return Estimate(max(0.0, left - (now - t)), "run")
