"""The Layers step: Recommended by default, each stage's shift from pretraining measured on the
user's images in the background, one click to fine-tune what is recommended, and a tree that
shows what really trains in each mode."""

from __future__ import annotations

from PySide6.QtCore import Qt

from tlstudio.core.models.layers import stages

from .conftest import drop_on
from .test_wizard import click

CHECK = Qt.ItemDataRole.CheckStateRole


def test_shift_column_and_one_click_recommendation(qtbot, window, mri_folder):
    drop_on(window, [mri_folder])
    qtbot.waitUntil(lambda: window.state.index is not None, timeout=60_000)
    click(qtbot, window.next_button)
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    click(qtbot, window.backbone_page.cards["efficientnet_lite0"].radio)
    click(qtbot, window.next_button)
    layers = window.layers_page
    assert layers.recommended_radio.isChecked() and window.state.mode == "recommended"
    qtbot.waitUntil(lambda: layers.adapt is not None, timeout=120_000)

    model = layers.tree_model
    shift_cell = model.index_of("blocks.6").siblingAtColumn(4)
    assert model.data(shift_cell).endswith("· adapt")  # the last stage always adapts
    assert float(model.data(model.index_of("blocks.2").siblingAtColumn(4)).split()[0]) >= 0
    assert "recommended to adapt" in layers.shift_label.text()
    # Recommended: the run gets exactly the layers shown, not recomputed ones
    assert window.state.mode == "recommended"
    assert "blocks.6" not in window.state.frozen_paths
    assert model.data(model.index_of("blocks.6"), CHECK) == Qt.CheckState.Checked
    assert window.state.train_config().frozen_paths == window.state.frozen_paths
    assert window.state.train_config().probe_first is True  # MRI: near, the probe first
    # images that shift an early stage (far from pretraining) skip the probe, as the CLI's
    # run would decide from the same gauge (core domain_shift.far_from_pretraining)
    far = [{"stage": b, "shift": 3.0 if b == "blocks.1" else 0.1, "layers": 2}
           for b in stages(layers.net)]
    layers._show_shifts(far)
    assert window.state.train_config().probe_first is False
    assert "fresh head" in window.state.trainable_summary

    # Linear probe: the tree shows the head alone, as the summary says (it used to keep
    # ticking the fine-tune's layers)
    click(qtbot, layers.probe_radio)
    assert window.state.mode == "linear-probe"
    assert model.data(model.index_of("blocks.6"), CHECK) == Qt.CheckState.Unchecked
    assert model.data(model.index_of("classifier"), CHECK) == Qt.CheckState.Checked

    # One click: Fine-tune with the recommended stages checked, editable from there
    click(qtbot, layers.apply_button)
    assert layers.tune_radio.isChecked() and window.state.mode == "fine-tune"
    for stage in layers.adapt:
        assert stage not in window.state.frozen_paths
    assert "blocks.0" in window.state.frozen_paths or "blocks.0" in layers.adapt

    # Another window drops what was measured with the old one
    layers.state.window = "auto"
    layers.state.window_changed.emit()
    assert layers.adapt is None and model.data(shift_cell) == ""
