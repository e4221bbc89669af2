"""The Layers step's summary line and its tree always describe the same plan (issue 18: the
summary said "2,562 ... trainable (the head)" while the tree still ticked 1,020,162), in
every mode and after every preset or click; layer types read in words."""

from __future__ import annotations

import re

from PySide6.QtCore import Qt

from tlstudio.core.data.dataset import scan

from .test_wizard import click


def _summary_count(text: str) -> int:
    return int(re.search(r"([\d,]+) of [\d,]+ parameters trainable", text)[1].replace(",", ""))


def _tree_count(model) -> int:
    root = model.index(0, 0)
    assert model.data(root.siblingAtColumn(1)) == "whole network"
    return int(model.data(root.siblingAtColumn(3)).replace(",", ""))


def test_the_summary_and_the_tree_agree_in_every_mode(qtbot, window, shapes):
    window.state.set_dataset(scan(shapes))
    qtbot.waitUntil(lambda: not window.backbone_page.loading, timeout=60_000)
    window.go(3)
    layers = window.layers_page
    qtbot.waitUntil(lambda: layers.tree_model is not None, timeout=60_000)
    model = layers.tree_model
    seen = set()

    def agree() -> None:
        text = layers.summary_label.text()
        if "parameters trainable" in text:  # Recommended before its measurement has none
            assert _summary_count(text) == _tree_count(model), text
            seen.add(_tree_count(model))

    for radio in (layers.probe_radio, layers.tune_radio, layers.recommended_radio):
        click(qtbot, radio)
        agree()
    click(qtbot, layers.tune_radio)
    for button in (layers.head_button, layers.last_button, layers.all_button):
        click(qtbot, button)
        agree()
    # a click in the tree, then back to the probe and to the user's own choice
    blocks = model.index_of("blocks")
    model.setData(blocks, Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole)
    agree()
    click(qtbot, layers.probe_radio)
    agree()
    click(qtbot, layers.tune_radio)
    agree()
    qtbot.waitUntil(lambda: layers.adapt is not None, timeout=120_000)
    click(qtbot, layers.recommended_radio)
    agree()
    assert len(seen) >= 4  # the plans differed, so the checks compared something

    # types in words, the class name in the tooltip
    stem = model.index_of("conv_stem").siblingAtColumn(1)
    assert model.data(stem) == "convolution"
    assert model.data(stem, Qt.ItemDataRole.ToolTipRole).startswith("Conv2d")
    assert model.data(model.index_of("bn1").siblingAtColumn(1)) == "normalisation + activation"
