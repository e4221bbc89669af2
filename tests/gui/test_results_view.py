"""The Results step as a reviewer uses it: held-out numbers with intervals, a confusion
matrix whose cells open exactly their images, validation on request, heatmaps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tlstudio.core.engine.config import TrainConfig
from tlstudio.core.runs.history import read_predictions
from tlstudio.core.runs.training import train


@pytest.fixture
def shapes_run(shapes, tmp_path):
    run = tmp_path / "run"
    # two epochs of a linear probe: good, not perfect, so several cells hold images
    train(TrainConfig(mode="linear-probe", epochs=2, batch_size=16, workers=2,
                      val_fraction=0.25,
                      test_fraction=0.25), shapes, run)
    return run


def _show(window, qtbot, run):
    window.state.set_run(run)
    results = window.results_page
    window.stack.setCurrentWidget(results)
    results.on_enter()
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=10_000)
    return results


def _shown_paths(results) -> list[str]:
    return sorted(results.gallery.item(i).toolTip() for i in range(results.gallery.count()))


def test_the_headline_is_the_held_out_test_with_intervals(window, qtbot, shapes_run):
    results = _show(window, qtbot, shapes_run)
    test = json.loads((shapes_run / "metrics.json").read_text())["test"]
    summary = results.summary_label.text()
    assert "held-out test images" in summary and "95 % CI" in summary
    assert f"{test['accuracy'] * 100:.1f} %" in summary
    assert "Operating point" in summary and f"{test['threshold']:.3f}" in summary
    assert results.title_label.text() == "Results on the held-out test images"
    assert np.array_equal(results.matrix_plot.matrix, test["confusion_matrix"])
    sensitivity = test["per_class"]["square"]["sensitivity"]
    assert results.table.item(0, 1).text().startswith(f"{sensitivity * 100:.1f} % (")

    # validation on request, said to be optimistic; its matrix counts the validation images
    results.part_combo.setCurrentIndex(results.part_combo.findData("validation"))
    val = json.loads((shapes_run / "metrics.json").read_text())["validation"]
    assert results.matrix_plot.matrix.sum() == val["n"]
    assert "optimistic" in results.summary_label.text()


def test_clicking_a_confusion_matrix_cell_shows_exactly_its_images(window, qtbot, shapes_run):
    results = _show(window, qtbot, shapes_run)
    rows = read_predictions(shapes_run, "test")
    classes = ["disc", "square"]
    for true in range(2):
        for called in range(2):
            expected = sorted(r.path for r in rows
                              if r.label == classes[true] and r.predicted == classes[called])
            qtbot.mouseClick(results.matrix_plot.viewport(), Qt.MouseButton.LeftButton,
                             pos=results.matrix_plot.cell_centre(true, called))
            qtbot.waitUntil(lambda t=true, c=called: results.gallery_title.text().startswith(
                f"True {classes[t]}, called {classes[c]}"), timeout=5_000)
            count = len(expected)
            qtbot.waitUntil(lambda n=count: results.gallery.count() == n, timeout=10_000)
            assert _shown_paths(results) == expected
            assert len(expected) == results.matrix_plot.matrix[true, called]
    results.all_button.click()
    qtbot.waitUntil(lambda: results.gallery.count() == len(rows), timeout=10_000)
    first = results.gallery_rows[0]
    assert first.correct is False or all(r.correct for r in rows)  # mistakes first


def test_an_enlarged_image_shows_its_heatmap(window, qtbot, shapes_run):
    results = _show(window, qtbot, shapes_run)
    row = read_predictions(shapes_run, "test")[0]
    results.open_image(row)
    dialog = results.dialog
    qtbot.waitUntil(lambda: dialog.explanation is not None, timeout=30_000)
    assert dialog.explanation.heatmap.shape == (96, 96)
    assert dialog.prediction.label == row.predicted
    assert not dialog.heat_label.pixmap().isNull()
    assert "heatmap for" in dialog.note.text().lower()


def test_the_report_button_writes_one_file_into_the_run(window, qtbot, shapes_run):
    results = _show(window, qtbot, shapes_run)
    results.report_button.click()
    qtbot.waitUntil(lambda: "Report written" in results.export_label.text()
                    or "No report" in results.export_label.text(), timeout=60_000)
    assert "Report written" in results.export_label.text()
    report = shapes_run / "report.html"
    assert report.is_file() and "held-out test" in report.read_text(encoding="utf-8")


def test_predict_says_its_threshold_and_shows_a_heatmap(window, qtbot, shapes_run, shapes):
    window.state.set_run(shapes_run)
    page = window.predict_page
    page.predict_paths([shapes / "square" / "square_000.png"])
    qtbot.waitUntil(lambda: page.table.rowCount() == 1 and not page.busy, timeout=30_000)
    threshold = json.loads((shapes_run / "metrics.json").read_text())["decision"]["threshold"]
    assert f"'square' is called when its probability is at least {threshold:.3f}" in \
        page.status_label.text()
    row = page.results[0]
    assert page.table.item(0, 1).text() == row.label == (
        "square" if row.probabilities["square"] >= threshold else "disc")
    page.heat_check.setChecked(True)
    qtbot.waitUntil(lambda: page.heat_image is not None, timeout=30_000)
    assert not page.preview.pixmap().isNull()


def test_the_train_step_sets_the_operating_point_rule(window):
    page = window.train_page
    assert page.form_values()["threshold"] == "youden"
    page.threshold_rule.setCurrentIndex(page.threshold_rule.findData("sensitivity"))
    page.threshold_target.setValue(90)
    config = window.state.train_config(**page.form_values()).resolved()
    assert config.threshold == "sensitivity=0.9"


def test_cross_validation_from_the_train_step(window, qtbot, shapes):
    from .test_stale_state import LONG, _on_the_train_step

    page = _on_the_train_step(qtbot, window, shapes, epochs=4)
    page.folds.setValue(3)
    assert page.folds_final.isEnabled()
    page.folds_final.setCurrentIndex(page.folds_final.findData("split"))
    page.start()
    qtbot.waitUntil(lambda: window.state.run_dir is not None and not page.running,
                    timeout=LONG)
    assert "fold 3 of 3" in page.log.toPlainText()
    window.go(5)
    results = window.results_page
    qtbot.waitUntil(lambda: "Accuracy" in results.summary_label.text(), timeout=10_000)
    cv = json.loads((window.state.run_dir / "metrics.json").read_text())["cv"]
    assert f"Cross-validation over 3 folds</b> (every image tested once): accuracy " \
           f"{cv['accuracy_mean'] * 100:.1f} %" in results.summary_label.text()
    assert "held-out test images" in results.summary_label.text()  # final on the split


def test_the_map_places_every_image_and_opens_the_one_clicked(window, qtbot, shapes_run):
    results = _show(window, qtbot, shapes_run)
    view = results.map_view
    results.curves.setCurrentWidget(view)
    view.draw_button.click()
    qtbot.waitUntil(lambda: view.result is not None, timeout=120_000)
    split = json.loads((shapes_run / "split.json").read_text())
    total = sum(len(v) for v in split.values())
    points = view.result["points"]
    assert len(points) == total and {p["part"] for p in points} == {"train", "val", "test"}
    wrong = {p["path"] for p in points if not p["correct"] and p["part"] == "test"}
    assert wrong == {r.path for r in read_predictions(shapes_run, "test") if not r.correct}
    scatters = [i for i in view.plot.listDataItems() if hasattr(i, "points")]
    assert sum(len(s.points()) for s in scatters) == total
    assert f"{total} images" in view.status.text()

    spot = scatters[0].points()[0]
    view._clicked(scatters[0], [spot])
    qtbot.waitUntil(lambda: results.dialog is not None and results.dialog.isVisible(),
                    timeout=10_000)
    assert results.dialog.caption.text().startswith(f"true: {spot.data()['label']}")
