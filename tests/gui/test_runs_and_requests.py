"""The studio over resumable runs, and requests where the newest wins: a slow earlier scan
or prediction never overwrites a later one; results are read without building a model; a
bug in a background task names the log that holds its traceback."""

from __future__ import annotations

import time

import pytest

from tlstudio.core.data.dataset import scan as real_scan
from tlstudio.core.engine import events as ev
from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.logs import log_file
from tlstudio.core.runs.history import read_config, read_epochs, runs_root
from tlstudio.core.runs.training import train
from tlstudio.gui.pages import data_page as data_page_module
from tlstudio.gui.workers import run_task

from ..conftest import make_shapes_folder
from .test_training_thread import _ready_to_train


def _quick(**kw) -> TrainConfig:
    return TrainConfig(**{**dict(backbone="efficientnet_lite0", mode="linear-probe", batch_size=8,
                               workers=2), **kw})


def test_a_slow_earlier_scan_never_overwrites_a_later_one(qtbot, window, tmp_path,
                                                          monkeypatch):
    first = make_shapes_folder(tmp_path / "first", per_class=4)
    second = make_shapes_folder(tmp_path / "second", per_class=5)

    def scan(path, progress=None, **kw):
        if path == first:  # a slow network share: answers after the second folder
            time.sleep(2.0)
        return real_scan(path, progress=progress, **kw)

    monkeypatch.setattr(data_page_module, "scan", scan)
    page = window.data_page
    page.load(first)
    page.load(second)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    assert window.state.index.root == second
    qtbot.wait(2500)  # the first scan has answered by now, and must have been dropped
    assert window.state.index.root == second
    assert "10 images" in page.summary_label.text()


def test_results_are_read_without_building_a_model(qtbot, window, shapes, tmp_path,
                                                   monkeypatch):
    out = tmp_path / "run"
    train(_quick(epochs=2), shapes, out)

    def no_model(*a, **k):
        raise AssertionError("the Results step built a model to show numbers")

    monkeypatch.setattr("tlstudio.core.models.backbones.build_model", no_model)
    window.state.set_run(out)
    window.results_page.on_enter()
    qtbot.waitUntil(lambda: "Accuracy" in window.results_page.summary_label.text(),
                    timeout=30_000)
    assert "held-out test images" in window.results_page.summary_label.text()


def test_the_newest_prediction_request_wins(qtbot, window, shapes, tmp_path, monkeypatch):
    out = tmp_path / "run"
    train(_quick(epochs=2), shapes, out)
    window.state.set_run(out)
    from tlstudio.core.runs.predict import Predictor

    real = Predictor.predict

    def slow_for_discs(self, paths, batch_size=32, should_stop=None):
        if any("disc" in str(p) for p in paths):
            for _ in range(40):  # a long request; it is told to stop when superseded
                time.sleep(0.05)
                if should_stop is not None:
                    should_stop()
        return real(self, paths, batch_size, should_stop)

    monkeypatch.setattr(Predictor, "predict", slow_for_discs)
    page = window.predict_page
    page.predict_paths([shapes / "disc"])
    page.predict_paths([shapes / "square" / "square_001.png"])
    qtbot.waitUntil(lambda: len(page.results) > 0, timeout=60_000)
    qtbot.wait(2500)
    assert [r.path for r in page.results] == [str(shapes / "square" / "square_001.png")]


def test_a_bug_in_a_task_shows_where_its_traceback_is(qtbot, window):
    messages: list = []

    def broken_task():
        raise KeyError("a bug, not bad input")

    run_task(broken_task, on_error=messages.append, parent=window)
    qtbot.waitUntil(lambda: len(messages) > 0, timeout=10_000)
    assert str(log_file()) in messages[0]
    text = log_file().read_text()
    assert "Traceback" in text and "a bug, not bad input" in text


@pytest.mark.slow
def test_the_studio_resumes_an_unfinished_run(qtbot, window, shapes):
    control = ev.Control()

    def stop_after_first(event):
        if isinstance(event, ev.EpochDone):
            control.stop()

    run = runs_root() / "20260101-000000-efficientnet_lite0"
    train(_quick(mode="fine-tune", freeze="head", epochs=3), shapes, run, [stop_after_first],
          control)
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem"])
    page.refresh_runs()
    assert page.resume_button.isEnabled()
    assert "epoch 1 of 3 (stopped)" in page.unfinished.currentText()
    # resumed from the Runs view (All runs…), which hands it to the Train step
    dialog = window.open_runs()
    row = [o.dir for o in dialog.overviews].index(run)
    assert dialog.table.item(row, 4).text() == "stopped (1/3)"
    dialog.select_rows([row])
    assert dialog.resume_button.isEnabled()
    dialog.resume_button.click()
    assert "Resuming" in dialog.message.text()
    qtbot.waitUntil(lambda: not page.running and page.finished_metrics is not None,
                    timeout=300_000)
    assert window.state.run_dir == run
    assert [row["epoch"] for row in read_epochs(run)] == [1, 2, 3]
    assert len(page.val_points[0]) == 3  # the epoch done before, and the two resumed
    assert not page.resume_button.isEnabled()  # nothing left to resume


@pytest.mark.slow
def test_fine_tune_starts_from_an_earlier_probe(qtbot, window, shapes):
    probe = runs_root() / "20260101-000000-efficientnet_lite0"
    train(_quick(epochs=3), shapes, probe)
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.refresh_runs()
    found = page.start_from.findData(str(probe))
    assert found > 0, "the finished probe of the same backbone and classes is offered"
    page.start_from.setCurrentIndex(found)
    page.epochs.setValue(1)
    page.start()
    qtbot.waitUntil(lambda: not page.running and page.finished_metrics is not None,
                    timeout=300_000)
    run = window.state.run_dir
    assert read_config(run)["train"]["init_from"] == str(probe)
    assert read_epochs(run)[0]["epoch"] == 0  # the probe's score is the starting point


def test_training_results_are_handled_in_the_gui_thread(qtbot, window, shapes):
    """The worker lives in its own thread; a slot that is a plain callable (a lambda) runs
    there and touches widgets from the wrong thread (an occasional crash at the end of
    training). The page's own methods run in the GUI thread."""
    import threading

    threads: list = []
    state = window.state
    real = state.set_run

    def recording(run_dir):  # called by the page when a run finished
        threads.append(threading.current_thread() is threading.main_thread())
        real(run_dir)

    state.set_run = recording
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.epochs.setValue(1)
    page.start()
    qtbot.waitUntil(lambda: not page.running and len(threads) > 0, timeout=300_000)
    assert threads == [True]
    assert state.run_dir == page.current_run_dir


def test_closing_during_a_long_batch_waits_for_it(qtbot, window, shapes, monkeypatch):
    """Close asks, then waits for the batch in progress to end and the run to be saved,
    however long that takes (the window keeps painting meanwhile); nothing is cut off."""
    from tlstudio.core.engine import callbacks

    real = callbacks.ProgressEvents.on_batch_end
    slow = {"on": False}

    def long_batch(self, *args):
        real(self, *args)
        if slow["on"]:
            time.sleep(3.0)

    monkeypatch.setattr(callbacks.ProgressEvents, "on_batch_end", long_batch)
    page = _ready_to_train(qtbot, window, shapes, frozen=["conv_stem", "bn1", "blocks"])
    page.epochs.setValue(20)
    page.start()
    qtbot.waitUntil(lambda: len(page.train_points[0]) >= 1, timeout=120_000)
    slow["on"] = True
    qtbot.wait(500)  # the worker is inside a three-second batch now
    thread = page.runner.thread
    started = time.monotonic()
    assert window.close()  # the fixture answers "Yes" to "Stop training and close?"
    assert time.monotonic() - started >= 1.0, "closed without waiting for the batch"
    assert not page.runner.running and thread.isFinished()  # stopped and saved
    assert (page.current_run_dir / "config.json").is_file()  # a folder --resume accepts
