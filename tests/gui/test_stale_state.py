"""State that follows the user: after the data or a setting changes, no step shows or uses a
model made for the old choices, and each says why."""

from __future__ import annotations

import pytest
from PIL import Image

from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs import training as training_module
from tlstudio.core.runs.training import train
from tlstudio.errors import UserError

from ..conftest import make_shapes_folder

LONG = 300_000


def _other_dataset(root):
    """Dataset B: other classes (solar cells, say), other pictures."""
    for label, colour in (("cracked", (250, 250, 250)), ("intact", (20, 20, 20))):
        (root / label).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (48, 48), tuple(c - 3 * i if c else 3 * i for c in colour)).save(
                root / label / f"{label}{i}.png")
    return root


def _on_the_train_step(qtbot, window, folder, epochs: int):
    """What a user does: load a folder, choose the linear probe (the fastest mode: these
    tests are about the studio, not the mode), open Train."""
    window.data_page.load(folder)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.go(3)
    qtbot.waitUntil(lambda: window.layers_page.tree_model is not None, timeout=60_000)
    window.layers_page.probe_radio.setChecked(True)
    window.go(4)
    page = window.train_page
    page.epochs.setValue(epochs)
    page.batch.setValue(8)
    return page


def _train_in_the_studio(qtbot, window, folder):
    """...and press Start, then wait for the run."""
    page = _on_the_train_step(qtbot, window, folder, epochs=3)
    page.start()
    qtbot.waitUntil(lambda: window.state.run_dir is not None and not page.running,
                    timeout=LONG)
    return window.state.run_dir


def test_loading_dataset_b_takes_dataset_a_model_away(qtbot, window, tmp_path):
    a = make_shapes_folder(tmp_path / "a", per_class=12)
    run_a = _train_in_the_studio(qtbot, window, a)
    window.go(5)
    results = window.results_page
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=30_000)
    assert results.table.columnCount() == 2 and results.export_button.isEnabled()
    results.export_label.setText(f"Exported {tmp_path / 'x'} — same answer as the app …")
    predict = window.predict_page
    window.go(6)
    predict.predict_paths([a / "disc" / "disc_000.png"])
    qtbot.waitUntil(lambda: predict.table.rowCount() == 1, timeout=60_000)

    b = _other_dataset(tmp_path / "solar")
    window.go(1)
    window.data_page.load(b)
    qtbot.waitUntil(lambda: window.state.index is not None
                    and window.state.index.root == b, timeout=60_000)

    assert window.state.run_dir is None
    assert run_a.name in window.state.outdated and "dataset changed" in window.state.outdated
    # Results: nothing of A's run, and the reason
    assert "Out of date" in results.summary_label.text()
    assert "dataset changed" in results.summary_label.text()
    assert results.table.columnCount() == 0 and results.gallery.count() == 0
    assert results.matrix_plot.matrix.size == 0
    assert results.matrix_plot.getAxis("bottom")._tickLevels is None  # no class names of A
    assert results.export_label.text() == "" and not results.export_button.isEnabled()
    results.on_enter()
    assert "Accuracy" not in results.summary_label.text()
    # the steps after Train cannot be opened until a run of B exists
    assert window.reachable() == 4
    window.go(5)
    assert window.current != 5
    # Predict: A's answers are gone, and a new image gets no label from A's model
    assert predict.table.rowCount() == 0 and predict.predictor is None
    predict.predict_paths([b / "cracked" / "cracked0.png"])
    qtbot.wait(300)
    assert predict.table.rowCount() == 0
    assert "Out of date" in predict.status_label.text()
    assert "Out of date" in window.train_page.status_label.text()


def test_changing_a_training_setting_marks_the_run_out_of_date(qtbot, window, tmp_path):
    folder = make_shapes_folder(tmp_path / "a", per_class=12)
    run = _train_in_the_studio(qtbot, window, folder)
    page = window.train_page
    page.on_enter()  # filling the form's defaults is not a change
    assert window.state.run_dir == run
    page.lr.setValue(page.lr.value() * 2)  # the user edits the learning rate
    assert window.state.run_dir is None
    assert "training settings changed" in window.state.outdated
    assert "Out of date" in page.status_label.text()
    # Next says why in these terms, not "let at least one epoch finish" (epochs did)
    assert "no longer matches your choices" in page.blocker()


def test_same_dataset_scanned_again_keeps_the_run(qtbot, window, tmp_path):
    folder = make_shapes_folder(tmp_path / "a", per_class=12)
    run = _train_in_the_studio(qtbot, window, folder)
    window.go(1)
    window.data_page.load(folder)
    qtbot.waitUntil(lambda: not window.data_page.scanning, timeout=60_000)
    assert window.state.run_dir == run


def test_a_failed_run_leaves_no_previous_results_on_show(qtbot, window, tmp_path,
                                                         monkeypatch):
    folder = make_shapes_folder(tmp_path / "a", per_class=12)
    previous = tmp_path / "previous"
    train(TrainConfig(backbone="efficientnet_lite0", mode="linear-probe", epochs=2,
                      batch_size=8), folder, previous)
    window.data_page.load(folder)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.go(3)
    qtbot.waitUntil(lambda: window.layers_page.tree_model is not None, timeout=60_000)
    window.state.set_run(previous)
    window.go(5)
    assert window.current == 5
    qtbot.waitUntil(lambda: "Accuracy" in window.results_page.summary_label.text(),
                    timeout=30_000)

    def broken(*a, **k):
        raise UserError("the disk is full")

    monkeypatch.setattr(training_module, "_fit_and_report", broken)
    window.go(4)
    page = window.train_page
    page.start()
    qtbot.waitUntil(lambda: "Training failed" in page.status_label.text(), timeout=60_000)
    assert window.state.run_dir is None
    assert "failed" in window.state.outdated and "disk is full" in window.state.outdated
    assert "Accuracy" not in window.results_page.summary_label.text()
    assert "failed" in window.results_page.summary_label.text()


def test_a_run_that_ends_after_the_choices_changed_is_not_shown(qtbot, window, tmp_path):
    folder = make_shapes_folder(tmp_path / "a", per_class=12)
    page = _on_the_train_step(qtbot, window, folder, epochs=30)
    page.start()
    qtbot.waitUntil(lambda: len(page.val_points[0]) >= 1, timeout=LONG)
    window.go(1)
    window.data_page.seed_spin.setValue(7)  # the user changes the split while it trains
    window.train_page.stop()
    # stopping still writes the run's results (and fits its out-of-distribution warning)
    qtbot.waitUntil(lambda: "out of date" in page.status_label.text().lower()
                    and not page.running, timeout=LONG)
    assert window.state.run_dir is None


@pytest.mark.parametrize("bad", ["empty", "missing"])
def test_data_step_messages_replace_the_previous_datasets(qtbot, window, tmp_path, bad):
    good = make_shapes_folder(tmp_path / "good", per_class=6)
    (good / "disc" / "notes.txt").write_text("not an image")
    data = window.data_page
    data.load(good)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    qtbot.waitUntil(lambda: data.thumbs.count() > 0, timeout=30_000)
    assert data.problems.count() == 1 and "12 images" in data.summary_label.text()
    target = tmp_path / "empty-folder" if bad == "empty" else tmp_path / "nowhere"
    if bad == "empty":
        target.mkdir()
    data.load(target)
    qtbot.waitUntil(lambda: data.error is not None, timeout=30_000)
    assert "Cannot use this dataset" in data.path_label.text()
    assert data.summary_label.text() == "" and data.problems.count() == 0
    assert data.thumbs.count() == 0 and data.class_combo.count() == 0
    assert data.split_label.text() == "" and not data.imbalance_label.isVisible()
    assert data.chart.getAxis("bottom")._tickLevels is None  # no class names left
    data.load(good)
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    assert "Cannot use" not in data.path_label.text()
