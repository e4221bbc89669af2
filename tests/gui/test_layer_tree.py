"""The layer-tree model: a well-behaved Qt model whose checkboxes drive the FreezePlan."""

from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QTreeView

from tlstudio.core.models.backbones import build_model
from tlstudio.core.models.layers import layer_tree, preset_plan
from tlstudio.gui.layer_model import LayerTreeModel

CHECK = Qt.ItemDataRole.CheckStateRole


def _model(name="efficientnet_lite0", preset="head"):
    net = build_model(name, 3, pretrained=False)
    return net, LayerTreeModel(layer_tree(net), preset_plan(net, preset))


def test_qtmodeltester_passes(qtmodeltester):
    _, model = _model()
    qtmodeltester.check(model, force_py=True)


def test_checking_a_stage_trains_it_and_updates_counts(qtbot):
    net, model = _model()
    head_only = model.plan.trainable()
    changes = []
    model.plan_changed.connect(lambda: changes.append(1))
    blocks6 = model.index_of("blocks.6")
    assert model.data(blocks6, CHECK) == Qt.CheckState.Unchecked
    assert model.setData(blocks6, Qt.CheckState.Checked, CHECK)
    assert changes
    gained = sum(p.numel() for p in net.blocks[6].parameters())
    assert model.plan.trainable() == head_only + gained
    assert model.data(model.index_of("blocks"), CHECK) == Qt.CheckState.PartiallyChecked
    trainable_cell = model.index(blocks6.row(), 3, blocks6.parent())
    assert model.data(trainable_cell) == f"{gained:,}"
    # unchecking one block inside the stage leaves the stage partial
    model.setData(model.index_of("blocks.6.0.conv_pw"), Qt.CheckState.Unchecked, CHECK)
    assert model.data(blocks6, CHECK) == Qt.CheckState.PartiallyChecked


def test_toggling_top_level_items_is_instant(qtbot):
    _, model = _model("efficientnet_lite2", "full")
    view = QTreeView()
    qtbot.addWidget(view)
    view.setModel(model)
    view.expandAll()
    view.show()
    top = model.index(0, 0)
    rows = [model.index(r, 0, top) for r in range(model.rowCount(top))]
    started = time.perf_counter()
    for index in rows:
        model.setData(index, Qt.CheckState.Unchecked, CHECK)
        qtbot.wait(1)  # let the view repaint
    per_toggle = (time.perf_counter() - started) / len(rows)
    assert model.plan.trainable() == 0
    assert per_toggle < 0.25, f"{per_toggle * 1000:.0f} ms per toggle"  # generous on 2 CPUs


def test_read_only_in_linear_probe_mode(qtbot):
    _, model = _model()
    model.set_editable(False)
    index = model.index_of("blocks")
    assert not (model.flags(index) & Qt.ItemFlag.ItemIsUserCheckable)
    assert not model.setData(index, Qt.CheckState.Checked, CHECK)
