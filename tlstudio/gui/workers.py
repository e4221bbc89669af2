"""Running core work off the GUI thread.

* :func:`run_task` — short jobs (scan, thumbnails, model build, prediction) on the global
  QThreadPool; results come back as signals, never through shared state.
* :class:`TrainingWorker` — a QObject moved to its own QThread (the Qt docs pattern) that
  calls ``core.training.train`` and turns its events into throttled signals. Stop/pause go
  through a ``core.events.Control`` the trainer checks between batches: a queued slot could
  not run while the worker's loop is busy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThread, QThreadPool, QTimer, Signal, Slot

from ..core.engine import events as ev
from ..core.engine.forecast import Forecast, describe
from ..core.logs import report_bug
from ..errors import UserError

log = logging.getLogger(__name__)


class TaskSignals(QObject):
    progress = Signal(int, int)
    finished = Signal(object)
    failed = Signal(str)


class _Runnable(QRunnable):
    def __init__(self, fn: Callable[..., Any], signals: TaskSignals, with_progress: bool):
        super().__init__()
        self.fn, self.signals, self.with_progress = fn, signals, with_progress
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            self._run()
        except RuntimeError as exc:  # the page that asked is gone (window closed)
            log.info("a background task finished after its page was closed: %s", exc)

    def _run(self) -> None:
        try:
            if self.with_progress:
                last = [0.0]

                def progress(done: int, total: int) -> None:
                    now = time.perf_counter()
                    if done == total or now - last[0] > 0.05:  # at most ~20 updates/s
                        last[0] = now
                        self.signals.progress.emit(done, total)

                result = self.fn(progress)
            else:
                result = self.fn()
        except Superseded:
            self.signals.failed.emit("")  # a newer request took over; nobody listens
        except Exception as exc:  # reported to the user, never crashes the app
            if _is_user_error(exc):
                message = str(exc) or type(exc).__name__
            else:  # a bug: the traceback goes to the log, the message says where
                message = report_bug(log, exc, getattr(self.fn, "__name__", "a task"))
            self.signals.failed.emit(message)
        else:
            self.signals.finished.emit(result)


def _is_user_error(exc: Exception) -> bool:
    return isinstance(exc, (UserError, ValueError, FileNotFoundError))


def run_task(fn: Callable[..., Any], on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[str], None] | None = None,
             on_progress: Callable[[int, int], None] | None = None,
             parent: QObject | None = None) -> TaskSignals:
    """Run ``fn`` in the thread pool. With ``on_progress``, ``fn`` receives a progress callback."""
    signals = TaskSignals(parent)
    if on_done is not None:
        signals.finished.connect(on_done)
    if on_error is not None:
        signals.failed.connect(on_error)
    if on_progress is not None:
        signals.progress.connect(on_progress)
    QThreadPool.globalInstance().start(_Runnable(fn, signals, on_progress is not None))
    return signals


class Superseded(Exception):
    """Raised inside a task whose request a newer one replaced."""


class LatestTask:
    """Requests of one kind where the newest wins: starting one tells the previous one to
    stop (``cancelled()`` becomes true; ``check()`` raises) and drops whatever it returns."""

    def __init__(self, parent: QObject):
        self.parent = parent
        self.generation = 0
        self._cancel: threading.Event | None = None

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def cancel(self) -> None:
        self.generation += 1
        if self._cancel is not None:
            self._cancel.set()
        self._cancel = None

    def start(self, fn: Callable[..., Any], on_done: Callable[[Any], None],
              on_error: Callable[[str], None] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> None:
        """``fn(token, [progress])``: ``token.check()`` raises once superseded."""
        self.cancel()
        generation, token = self.generation, CancelToken()
        self._cancel = token.event

        def current() -> bool:
            return generation == self.generation

        def done(result) -> None:
            if current():
                self._cancel = None
                on_done(result)

        def failed(message: str) -> None:
            if current():
                self._cancel = None
                if on_error is not None:
                    on_error(message)

        def progress(done_: int, total: int) -> None:
            if current() and on_progress is not None:
                on_progress(done_, total)

        if on_progress is None:
            run_task(lambda: fn(token), done, failed, parent=self.parent)
        else:
            def work(report):
                def checked(d: int, t: int) -> None:
                    token.check()
                    report(d, t)

                return fn(token, checked)

            run_task(work, done, failed, progress, parent=self.parent)


class CancelToken:
    def __init__(self) -> None:
        self.event = threading.Event()

    def cancelled(self) -> bool:
        return self.event.is_set()

    def check(self) -> None:
        if self.event.is_set():
            raise Superseded()


def finish_background_tasks(timeout_ms: int = 15000) -> bool:
    """Drop queued tasks and wait for running ones; call before the process exits.

    A pool thread still running Python code while the interpreter shuts down crashes the
    process. False when a task is still running after ``timeout_ms``.
    """
    pool = QThreadPool.globalInstance()
    pool.clear()
    return pool.waitForDone(timeout_ms)


class TrainingWorker(QObject):
    """Runs one training in a QThread; emits Python scalars and small dicts."""

    stage_progress = Signal(str, int, int)
    epoch_started = Signal(int, int)
    batch_done = Signal(dict)
    epoch_done = Signal(dict)
    notice = Signal(str)
    finished = Signal(dict)
    failed = Signal(str)
    time_left = Signal(float, str)  # seconds (-1: none yet) and the words for them

    BATCH_INTERVAL_S = 0.05  # at most ~20 plot updates a second

    def __init__(self, config, dataset, out_dir, resume: bool = False, folds: int = 0,
                 final: str = "all", processes: int = 1) -> None:
        super().__init__()
        self.config, self.dataset, self.out_dir = config, dataset, out_dir
        self.folds, self.final = folds, final  # cross-validation first (0: none)
        self.processes = processes  # > 1: torchrun processes (one per GPU) share the run
        self.resuming = resume  # continue the run in out_dir instead of starting one
        self.control = ev.Control()
        self.forecast = Forecast()
        self._last_batch = 0.0
        self._last_stage = 0.0

    @Slot()
    def run(self) -> None:
        from ..core.runs.training import resume, train

        try:
            if self.processes > 1:
                from ..core.runs.launch import train_in_processes

                train_in_processes(self.processes, self.config,
                                   None if self.resuming else str(self.dataset.root),
                                   self.out_dir, [self._on_event], self.control,
                                   resume=self.resuming)
            elif self.resuming:
                resume(self.out_dir, [self._on_event], self.control)
            elif self.folds:
                from ..core.runs.cv import cross_validate

                cross_validate(self.config, self.dataset, self.out_dir, self.folds, self.final,
                               [self._on_event], self.control)
            else:
                train(self.config, self.dataset, self.out_dir, [self._on_event], self.control)
        except Exception as exc:  # already reported to the user through a Failed event
            log.info("training ended with %s: %s", type(exc).__name__, exc)
        finally:
            # End the thread's event loop from inside: a queued quit() would wait for the
            # GUI thread, which may itself be waiting for this thread (closing the window).
            QThread.currentThread().quit()

    def _on_event(self, event: ev.Event) -> None:
        now = time.perf_counter()
        self.forecast.see(event)
        if isinstance(event, ev.BatchDone):
            if event.batch == event.batches or now - self._last_batch >= self.BATCH_INTERVAL_S:
                self._last_batch = now
                self.batch_done.emit(asdict(event))
                self._tell_time_left()
        elif isinstance(event, ev.StageProgress):
            if event.done == event.total or now - self._last_stage >= self.BATCH_INTERVAL_S:
                self._last_stage = now
                self.stage_progress.emit(event.stage, event.done, event.total)
                self._tell_time_left()
        elif isinstance(event, ev.EpochStarted):
            self.epoch_started.emit(event.epoch, event.epochs)
        elif isinstance(event, ev.EpochDone):
            self.epoch_done.emit(asdict(event))
            self._tell_time_left()
        elif isinstance(event, ev.Notice):
            self.notice.emit(event.message)
        elif isinstance(event, ev.Finished):
            self.finished.emit(asdict(event))
        elif isinstance(event, ev.Failed):
            self.failed.emit(event.message)

    def _tell_time_left(self) -> None:
        left = self.forecast.estimate()
        self.time_left.emit(-1.0 if left is None else left.seconds, describe(left))

    def stop(self) -> None:
        self.forecast.resume()  # stopped while paused: the final scoring is work again
        self.control.stop()

    def pause(self) -> None:
        self.control.pause()
        self.forecast.pause()

    def resume(self) -> None:
        self.forecast.resume()
        self.control.resume()


class TrainingThread(QObject):
    """Owns the QThread and the worker; cleans both up when training ends."""

    ended = Signal()

    def __init__(self, worker: TrainingWorker, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName("tlstudio-training")
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        self.thread.finished.connect(self._cleanup)

    def start(self) -> None:
        self.thread.start()

    @property
    def running(self) -> bool:
        return self.thread.isRunning()

    def stop_and_wait(self) -> None:
        """Ask the trainer to stop and wait, however long its current batch takes (the loop
        notices between batches, then saves); the thread is never cut off."""
        self.worker.stop()
        self.thread.wait()

    def _cleanup(self) -> None:
        self.worker.deleteLater()
        QTimer.singleShot(0, self.ended.emit)
