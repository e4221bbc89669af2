"""Training runs off the GUI thread: the GUI keeps painting, Stop is quick, closing is safe,
and a failure is shown as a message while the app stays usable."""

from __future__ import annotations

import time

import torch
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMessageBox

from tlstudio.core.data.dataset import scan
from tlstudio.core.models.layers import FreezePlan
from tlstudio.core.runs.results import SCORING


def _ready_to_train(qtbot, window, folder, frozen=()):
    """Dataset chosen, lite0, fine-tune with ``frozen`` module paths; on the Train step."""
    window.state.set_dataset(scan(folder))
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.go(3)
    layers = window.layers_page
    qtbot.waitUntil(lambda: layers.tree_model is not None, timeout=60_000)
    layers.tune_radio.setChecked(True)
    layers.tree_model.set_plan(FreezePlan(layers.net, frozen))
    assert window.state.mode == "fine-tune"
    window.go(4)
    assert window.current == 4
    page = window.train_page
    page.batch.setValue(4)
    return page


def test_gui_thread_keeps_painting_and_stop_is_quick(qtbot, window, shapes):
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks.0",
                                                          "blocks.1", "blocks.2", "blocks.3"])
    page.epochs.setValue(50)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    page.start()
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 3, timeout=120_000)
    ticks.clear()
    qtbot.wait(2000)  # two seconds of training with the timer running
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(ticks) >= 40, f"timer fired only {len(ticks)} times in 2 s"
    assert max(gaps) < 0.4, f"GUI thread blocked for {max(gaps):.2f} s"

    batches: list[float] = []
    page.runner.worker.batch_done.connect(lambda _info: batches.append(time.perf_counter()))
    stages: list[str] = []
    page.runner.worker.stage_progress.connect(lambda stage, *_: stages.append(stage))
    stopped = time.perf_counter()
    page.stop()
    assert "Stopping" in page.status_label.text()
    qtbot.waitUntil(lambda: not page.running, timeout=60_000)
    timer.stop()
    # the loop ends after the batch it was in (a batch of 4 here takes well under a second;
    # the last one of an epoch is always reported, so at most one more shows up)...
    assert len([t for t in batches if t > stopped]) <= 1, batches
    assert all(t - stopped < 1.5 for t in batches)
    # ...then the best epoch is scored and that is shown, not a frozen "Stopping" label
    assert SCORING in stages
    # the page runs until it has shown the end: never "not running" with Start greyed out
    assert page.start_button.isEnabled() and not page.stop_button.isEnabled()
    assert page.rate_label.text() == ""  # no "images/s · ETA" beside "Stopped"


def test_the_page_runs_until_it_has_shown_the_end(qtbot, window, shapes):
    """The training thread stops a moment before the page hears of it; in that moment the
    page still runs (Start greyed out, closing asks), so `running` and the buttons agree."""
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.epochs.setValue(50)
    page.start()
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 1, timeout=120_000)
    page.stop()
    page.runner.thread.wait()  # the thread has ended; the page has not processed it yet
    assert page.running and not page.start_button.isEnabled()
    qtbot.waitUntil(lambda: not page.running, timeout=10_000)
    assert page.start_button.isEnabled() and not page.stop_button.isEnabled()


def test_pause_holds_training(qtbot, window, shapes):
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.epochs.setValue(50)
    page.start()
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 2, timeout=120_000)
    page.toggle_pause()
    assert page.pause_button.text() == "Resume"
    qtbot.wait(500)
    held = len(page.train_points[0])
    qtbot.wait(1500)
    assert len(page.train_points[0]) == held
    page.toggle_pause()
    qtbot.waitUntil(lambda: len(page.train_points[0]) > held, timeout=30_000)
    page.stop()
    qtbot.waitUntil(lambda: not page.running, timeout=5_000)


def test_close_while_training_asks_then_stops_keeping_the_checkpoint(
        qtbot, window, shapes, monkeypatch):
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.epochs.setValue(50)
    page.start()
    qtbot.waitUntil(lambda: len(page.val_points[0]) >= 1, timeout=120_000)

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.No)
    assert not window.close()  # "No": the window stays, training goes on
    assert page.running

    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: QMessageBox.StandardButton.Yes)
    assert window.close()
    assert not page.runner.running  # the training thread has ended: stopped and saved
    run_dir = page.current_run_dir
    assert (run_dir / "best.safetensors").is_file()
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) >= 1


def test_failure_is_shown_and_the_app_stays_usable(qtbot, window, shapes, monkeypatch):
    import tlstudio.core.engine.loop as trainer

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "train_one_epoch", out_of_memory)
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem"])
    page.epochs.setValue(2)
    page.start()
    qtbot.waitUntil(lambda: page.start_button.isEnabled() and "failed" in page.status_label.text(),
                    timeout=120_000)
    assert "ran out of memory" in page.status_label.text()
    assert "lower the batch size" in page.log.toPlainText()
    assert page.start_button.isEnabled()
    window.go(1)
    assert window.current == 1  # still navigable


def test_several_gpus_share_a_run_that_stop_still_ends(qtbot, window, shapes, monkeypatch):
    """On a machine with several GPUs the Train step offers them; the run then trains in
    torchrun processes (here two CPU processes stand in for two GPUs) and shows the same
    live curves; Stop ends it after the current step, saved and resumable."""
    import json

    from tlstudio.core.runs import launch

    monkeypatch.setattr(launch, "gpu_count", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.refresh_gpus()
    assert page.gpus.isVisibleTo(page) and page.gpus.value() == 2
    page.epochs.setValue(40)
    page.start()
    assert not page.pause_button.isEnabled()  # pausing is for one process
    qtbot.waitUntil(lambda: len(page.val_points[0]) >= 2, timeout=180_000)
    assert "2 processes" in page.log.toPlainText()
    page.stop()
    qtbot.waitUntil(lambda: not page.running, timeout=120_000)
    run = page.current_run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["cancelled"] is True and 2 <= metrics["epochs_run"] < 40
    # each epoch plotted once: the first process speaks for both
    assert page.val_points[0] == list(range(1, metrics["epochs_run"] + 1))
    assert page.start_button.isEnabled()


def _fake_training(pause_seen: list):
    """A training that takes a known time: a 2 s decoding step, 4 epochs of 8 batches of
    0.1 s and a validation of 0.2 s, then a 0.4 s scoring. It checks the control between
    units, like the real loop, and each unit's event arrives after the unit's work (so one
    arrives after Pause was pressed)."""
    from tlstudio.core.engine import events as ev

    def train(config, dataset, out_dir, listeners=(), control=None):
        def emit(event):
            for listener in listeners:
                listener(event)

        for done in range(0, 21):
            control.checkpoint()
            time.sleep(0.1)
            if control.paused:
                pause_seen.append(done)
            emit(ev.StageProgress("decoding images", done, 20))
        for epoch in range(1, 5):
            emit(ev.EpochStarted(epoch, 4))
            for batch in range(1, 9):
                control.checkpoint()
                time.sleep(0.1)
                emit(ev.BatchDone(epoch, batch, 8, 0.5, 80.0))
            time.sleep(0.2)
            emit(ev.EpochDone(epoch, 4, 0.5, 0.5, 0.8, 1e-3, 1.0, epoch == 1))
        emit(ev.StageProgress(SCORING, 0, 1))
        time.sleep(0.4)
        emit(ev.StageProgress(SCORING, 1, 1))
        emit(ev.Finished(str(out_dir), {}))

    return train


def test_time_left_is_honest_and_pause_stays_shown(qtbot, window, shapes, monkeypatch):
    """After the first epoch the time left shown is within half of the real time left (the
    old estimate counted the decoding step's time as epochs' time); while paused the status
    says so whatever event of the batch in flight arrives; a run that ended shows none."""
    import tlstudio.core.runs.training as training

    pause_seen: list = []
    monkeypatch.setattr(training, "train", _fake_training(pause_seen))
    page = _ready_to_train(qtbot, window, shapes)
    page.start()
    qtbot.waitUntil(lambda: page.progress.value() >= 3, timeout=10_000)
    page.toggle_pause()
    assert "Paused" in page.status_label.text()
    qtbot.waitUntil(lambda: bool(pause_seen), timeout=5_000)  # the unit in flight reported...
    qtbot.wait(300)
    assert "decoding images" in page.status_label.text()
    assert "Paused" in page.status_label.text()  # ...and the pause is still shown
    assert "Paused" in page.rate_label.text()
    qtbot.wait(1500)  # paused time: not counted as work
    page.toggle_pause()

    shown: list[float] = []
    page.runner.worker.epoch_done.connect(
        lambda info: info["epoch"] == 1 and shown.append(time.perf_counter()))
    qtbot.waitUntil(lambda: bool(shown) and page.time_left is not None
                    and "Epoch 2" in page.status_label.text(), timeout=20_000)
    estimate, at = page.time_left, shown[0]
    assert "left" in page.rate_label.text() and "images/s" in page.rate_label.text()
    qtbot.waitUntil(lambda: not page.running, timeout=20_000)
    real = time.perf_counter() - at
    assert abs(estimate - real) <= 0.5 * real, (estimate, real)
    assert page.rate_label.text() == "" and page.time_left is None
