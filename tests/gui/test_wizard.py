"""The whole wizard, driven offscreen as a user would: drop, choose, train, read, predict."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QFileDialog, QRadioButton

from tlstudio.core.models.backbones import build_model
from tlstudio.core.models.layers import preset_plan

from .conftest import drop_on

LONG = 300_000  # ms: CPU training on 2 cores


def click(qtbot, button):
    """A left click where a user aims: on the text of a radio button, mid-button otherwise."""
    x = 10 if isinstance(button, QRadioButton) else button.width() // 2
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(x, button.height() // 2))


def test_whole_wizard(qtbot, window, mri_folder, tmp_path, monkeypatch):
    # Data: nothing chosen yet, and the window says why Next is disabled
    assert not window.next_button.isEnabled()
    assert "Choose a folder" in window.reason_label.text()
    drop_on(window, [mri_folder])
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    data = window.data_page
    assert "80 images in 2 classes" in data.summary_label.text()
    assert "no: 40, yes: 40" in data.summary_label.text()
    assert list(data.bars.opts["height"]) == [40, 40]
    assert "56 for training, 12 for validation, 12 held out for the test" in \
        data.split_label.text()
    qtbot.waitUntil(lambda: data.thumbs.count() >= 12, timeout=30_000)
    assert window.next_button.isEnabled()

    # Backbone: the offline lite0 card
    click(qtbot, window.next_button)
    page = window.backbone_page
    qtbot.waitUntil(lambda: not page.loading, timeout=60_000)
    card = page.cards["efficientnet_lite0"]
    click(qtbot, card.radio)
    assert card.radio.isChecked() and card.available
    assert window.state.spec.name == "efficientnet_lite0"

    # Layers: fine-tune the last stage; the summary is what the engine will train
    click(qtbot, window.next_button)
    layers = window.layers_page
    qtbot.waitUntil(lambda: layers.tree_model is not None, timeout=60_000)
    click(qtbot, layers.tune_radio)
    layers.last_spin.setValue(1)
    click(qtbot, layers.last_button)
    expected = preset_plan(build_model("efficientnet_lite0", 2, pretrained=False), "last-1")
    assert layers.summary_label.text() == expected.summary()
    model = layers.tree_model
    assert model.data(model.index_of(""), Qt.ItemDataRole.CheckStateRole) == \
        Qt.CheckState.PartiallyChecked
    assert model.data(model.index_of("blocks.6"), Qt.ItemDataRole.CheckStateRole) == \
        Qt.CheckState.Checked
    assert window.state.mode == "fine-tune" and "blocks.5" in window.state.frozen_paths

    # Train: two epochs, live curves
    click(qtbot, window.next_button)
    train = window.train_page
    assert "Fine-tune" in train.mode_label.text()
    train.epochs.setValue(2)
    train.batch.setValue(16)
    assert "Press Start" in window.reason_label.text()
    click(qtbot, train.start_button)
    assert train.stop_button.isEnabled() and not train.start_button.isEnabled()
    qtbot.waitUntil(lambda: train.finished_metrics is not None, timeout=LONG)
    qtbot.waitUntil(lambda: not train.running and window.next_button.isEnabled(),
                    timeout=10_000)
    assert len(train.train_curve.getData()[0]) >= 4  # per-batch points
    assert list(train.acc_curve.getData()[0]) == [1, 2]
    assert "Finished" in train.status_label.text()
    assert train.progress.value() == train.progress.maximum()

    # Results: the held-out test first; its matrix counts every test image once
    click(qtbot, window.next_button)
    results = window.results_page
    matrix = results.matrix_plot.matrix
    assert matrix.sum() == 12 == results.metrics["test"]["n"]  # 15 % of 80
    accuracy = np.trace(matrix) / matrix.sum()
    assert f"Accuracy {accuracy * 100:.1f} %" in results.summary_label.text()
    assert "held-out test images" in results.summary_label.text()
    assert results.table.columnCount() == 2
    assert results.table.horizontalHeaderItem(0).text() == "no"
    # Export from the Results step: the parity figure is shown to the user
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path))
    results.format_combo.setCurrentText("onnx")
    click(qtbot, results.export_button)
    qtbot.waitUntil(lambda: "test images" in results.export_label.text()
                    or "refused" in results.export_label.text(), timeout=120_000)
    assert "same answer as the app on 100.0% of 24" in results.export_label.text()
    assert list(tmp_path.glob("*-onnx/model.onnx"))

    # Predict: drop one image on the window
    click(qtbot, window.next_button)
    predict = window.predict_page
    image = sorted((mri_folder / "yes").iterdir())[0]
    drop_on(window, [image])
    qtbot.waitUntil(lambda: predict.table.rowCount() == 1, timeout=60_000)
    assert predict.table.item(0, 1).text() in {"no", "yes"}  # the run's call
    assert predict.table.item(0, 2).text().split()[0] in {"no", "yes"}
    assert predict.preview.pixmap() is not None and not predict.preview.pixmap().isNull()
    assert not window.next_button.isEnabled()  # last step


def test_wrong_folder_is_explained(qtbot, window, tmp_path):
    (tmp_path / "flat").mkdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "flat" / "a.png")
    drop_on(window, [tmp_path / "flat"])
    qtbot.waitUntil(lambda: window.data_page.error is not None, timeout=30_000)
    assert "no class sub-folders" in window.data_page.path_label.text()
    assert "no class sub-folders" in window.reason_label.text()
    assert not window.next_button.isEnabled()
