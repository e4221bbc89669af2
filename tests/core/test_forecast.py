"""The time left that the studio and the CLI show: from the rate of the step running now and
the work left in every later step of the training (epochs, final scoring), never the time
since the run started, never paused time, and nothing before it means something."""

from __future__ import annotations

from tlstudio.core.engine import events as ev
from tlstudio.core.engine.forecast import Forecast, clock_text, describe


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _epoch(forecast: Forecast, clock: Clock, epoch: int, epochs: int, batches: int,
           batch_s: float, validation_s: float) -> None:
    forecast.see(ev.EpochStarted(epoch, epochs))
    for b in range(1, batches + 1):
        clock.t += batch_s
        forecast.see(ev.BatchDone(epoch, b, batches, 0.5, 100.0))
    clock.t += validation_s
    forecast.see(ev.EpochDone(epoch, epochs, 0.5, 0.5, 0.9, 1e-3, batches * batch_s, False))


def test_after_the_first_epoch_the_estimate_counts_every_epoch_left_and_the_scoring():
    clock = Clock()
    forecast = Forecast(clock)
    # a slow decoding step first: it must not drag the epochs' rate down
    for done in range(0, 101, 10):
        forecast.see(ev.StageProgress("decoding images", done, 100))
        clock.t += 3.0
    _epoch(forecast, clock, 1, 5, batches=10, batch_s=1.0, validation_s=2.0)
    left = forecast.estimate()
    # 4 epochs of 12 s, then validation and test scored once more (2 x 2 s)
    assert left is not None and left.scope == "run"
    assert left.seconds == 4 * 12 + 4
    assert describe(left) == "about 0:52 left in this training"
    # halfway through the next epoch, half an epoch less
    forecast.see(ev.EpochStarted(2, 5))
    clock.t += 6.0
    forecast.see(ev.BatchDone(2, 6, 10, 0.5, 100.0))
    assert forecast.estimate().seconds == 6 + 3 * 12 + 4


def test_a_step_is_forecast_from_its_own_rate_once_it_has_run_a_while():
    clock = Clock()
    forecast = Forecast(clock)
    forecast.see(ev.StageProgress("features", 0, 240))
    clock.t += 1.0
    forecast.see(ev.StageProgress("features", 16, 240))
    assert forecast.estimate() is None  # one second of measurement: noise
    clock.t += 3.0
    forecast.see(ev.StageProgress("features", 64, 240))
    left = forecast.estimate()
    assert left.scope == "step" and left.seconds == (240 - 64) / 16
    assert describe(left) == "about 0:11 left in this step"
    forecast.see(ev.StageProgress("loading backbone", 0, 1))  # one unit: nothing to say
    assert forecast.estimate() is None


def test_the_first_epoch_uses_the_time_per_batch_and_paused_time_is_not_work():
    clock = Clock()
    forecast = Forecast(clock)
    forecast.see(ev.EpochStarted(1, 2))
    clock.t += 1.0
    forecast.see(ev.BatchDone(1, 1, 10, 0.5, 10.0))
    assert forecast.estimate() is None  # too early
    clock.t += 1.0
    forecast.see(ev.BatchDone(1, 2, 10, 0.5, 10.0))
    assert forecast.estimate().seconds == 8 + 10  # 1 s a batch
    forecast.pause()
    assert forecast.estimate() is None  # paused: no time runs out
    clock.t += 100.0
    forecast.resume()
    clock.t += 1.0
    forecast.see(ev.BatchDone(1, 3, 10, 0.5, 10.0))
    assert forecast.estimate().seconds == 7 + 10  # the pause did not slow the rate


def test_the_final_scoring_counts_down_and_the_end_clears_it():
    clock = Clock()
    forecast = Forecast(clock)
    _epoch(forecast, clock, 1, 1, batches=4, batch_s=1.0, validation_s=5.0)
    forecast.see(ev.StageProgress("scoring the best epoch on validation and test", 0, 1))
    clock.t += 4.0
    assert forecast.estimate().seconds == 10 - 4
    forecast.see(ev.Finished("run", {}))
    assert forecast.estimate() is None
    # a second training (the comparison from scratch) is measured afresh
    forecast.see(ev.EpochStarted(1, 3))
    assert forecast.estimate() is None


def test_clock_text():
    assert clock_text(59.6) == "1:00" and clock_text(3725) == "1:02:05" and clock_text(-3) == "0:00"


def test_the_terminal_progress_line_shows_the_time_left():
    import io

    from tlstudio.cli import ProgressPrinter

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    clock = Clock()
    printer = ProgressPrinter(Terminal())
    printer.forecast = Forecast(clock)
    _epoch(printer.forecast, clock, 1, 5, batches=10, batch_s=1.0, validation_s=2.0)
    printer(ev.EpochStarted(2, 5))
    clock.t += 1.0
    printer(ev.BatchDone(2, 1, 10, 0.4, 50.0))
    # the rest of this epoch (11 s), 3 more epochs of 12 s, the scoring (4 s)
    assert printer.stream.getvalue().endswith("50 img/s · about 0:51 left in this training")
