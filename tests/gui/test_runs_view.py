"""The Runs view: runs of an earlier session listed, reopened, compared, deleted."""

from __future__ import annotations

import json

from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.history import runs_root
from tlstudio.core.runs.training import train
from tlstudio.gui.main_window import MainWindow


def test_runs_from_an_earlier_session_are_listed_reopened_compared_and_deleted(
        qtbot, window, shapes):
    # "an earlier session": runs written into tlstudio's runs folder before this window
    first, second = runs_root() / "20261130-090000-efficientnet_lite0", \
        runs_root() / "20261130-100000-mobilenet_v2"
    train(TrainConfig(mode="linear-probe", epochs=2, batch_size=16, workers=2), shapes, first)
    train(TrainConfig(backbone="mobilenet_v2", mode="linear-probe", epochs=2, batch_size=16,
                      workers=2), shapes, second)
    window.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    dialog = again.open_runs()
    assert dialog.table.rowCount() == 2
    assert [o.dir.name for o in dialog.overviews] == [second.name, first.name]  # newest first
    test = json.loads((first / "metrics.json").read_text())["test"]
    assert dialog.table.item(1, 5).text().startswith(
        f"test accuracy {test['accuracy'] * 100:.1f} % (95 % CI")
    assert dialog.table.item(1, 2).text() == "efficientnet_lite0"

    # reopen: the Results panel shows that run, and the wizard's own state is untouched
    dialog.select_rows([1])
    qtbot.waitUntil(lambda: "Accuracy" in dialog.results.summary_label.text(), timeout=10_000)
    assert dialog.results.shown_run == first
    assert dialog.results.matrix_plot.matrix.sum() == test["n"]
    assert again.state.run_dir is None

    # compare both: one column each, measured on the same test images
    dialog.select_rows([0, 1])
    assert dialog.detail.currentWidget() is dialog.compare
    assert dialog.compare.table.columnCount() == 2
    assert "same images" in dialog.compare.note.text()
    texts = [dialog.compare.table.item(2, c).text() for c in range(2)]  # accuracy row
    assert all("95 % CI" in t for t in texts)

    # delete one: gone from the list and from the disk
    dialog.select_rows([0])
    dialog.delete_selected(confirm=False)
    assert not second.exists() and dialog.table.rowCount() == 1


def test_deleting_the_studios_own_run_takes_it_off_every_step(qtbot, window, shapes):
    run = runs_root() / "20261130-090000-efficientnet_lite0"
    train(TrainConfig(mode="linear-probe", epochs=1, batch_size=16, workers=2), shapes, run)
    window.state.set_run(run)
    results = window.results_page
    window.stack.setCurrentWidget(results)
    results.on_enter()
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=10_000)
    dialog = window.open_runs()
    dialog.select_rows([0])
    dialog.delete_selected(confirm=False)
    assert not run.exists() and window.state.run_dir is None
    assert "was deleted" in results.summary_label.text()
    assert "Accuracy" not in results.summary_label.text()
    assert window.predict_page.predictor is None
