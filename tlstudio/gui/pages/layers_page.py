"""Step 3, Layers: linear probe or fine-tune, and which layers train (the layer tree)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTreeView,
    QVBoxLayout,
)

from ...core.models.backbones import build_model
from ...core.models.layers import layer_tree, preset_plan, stages
from ..layer_model import LayerTreeModel
from ..widgets import hint, title
from ..workers import run_task
from .base import Page


class LayersPage(Page):
    title = "Layers"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.model_for: tuple | None = None
        self.tree_model: LayerTreeModel | None = None
        self.net = None
        self.building = False

        layout = QVBoxLayout(self)
        layout.addWidget(title("What learns"))
        self.probe_radio = QRadioButton("Linear probe (fast; a good first run)")
        self.tune_radio = QRadioButton("Fine-tune the layers checked below")
        self.mode_group = QButtonGroup(self)
        explanations = (
            "The whole backbone stays frozen; its features are computed once and only the new "
            "head learns.",
            "Slower; lets the backbone adapt to images unlike everyday photos (scans, "
            "micrographs).",
        )
        for radio, text in zip((self.probe_radio, self.tune_radio), explanations, strict=True):
            self.mode_group.addButton(radio)
            layout.addWidget(radio)
            explanation = hint(text)
            explanation.setContentsMargins(24, 0, 0, 4)
            layout.addWidget(explanation)
        self.probe_radio.setChecked(True)
        self.tune_radio.toggled.connect(self._mode_changed)

        presets = QHBoxLayout()
        self.head_button = QPushButton("Head only")
        self.last_button = QPushButton("Last stages:")
        self.last_spin = QSpinBox()
        self.last_spin.setRange(1, 12)
        self.all_button = QPushButton("Everything")
        self.head_button.clicked.connect(lambda: self.apply_preset("head"))
        self.last_button.clicked.connect(
            lambda: self.apply_preset(f"last-{self.last_spin.value()}"))
        self.all_button.clicked.connect(lambda: self.apply_preset("full"))
        for w in (QLabel("Presets:"), self.head_button, self.last_button, self.last_spin,
                  self.all_button):
            presets.addWidget(w)
        presets.addStretch(1)
        layout.addLayout(presets)

        self.summary_label = QLabel("")
        self.summary_label.setObjectName("summary")
        layout.addWidget(self.summary_label)
        self.tree = QTreeView()
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        layout.addWidget(self.tree, 1)
        layout.addWidget(hint(
            "Checked = trainable. Frozen BatchNorm layers keep their pretrained statistics. "
            "With few images, train little: the head, or the last stage or two."))
        state.backbone_changed.connect(self._invalidate)
        state.dataset_changed.connect(self._invalidate)

    def _invalidate(self) -> None:
        self.model_for = None

    def on_enter(self) -> None:
        key = (self.state.spec.name, len(self.state.index.classes) if self.state.index else 2)
        if key == self.model_for or self.building:
            return
        self.building = True
        self.summary_label.setText(f"Loading the layers of {self.state.spec.display_name} …")
        self.changed.emit()
        # The tree only needs the architecture: no weights, built off the GUI thread.
        run_task(lambda: build_model(key[0], key[1], pretrained=False),
                 on_done=lambda net: self._built(net, key),
                 on_error=self._failed, parent=self)

    def _failed(self, message: str) -> None:
        self.building = False
        self.summary_label.setText(f"Cannot build the backbone: {message}")
        self.changed.emit()

    def _built(self, net, key) -> None:
        self.building = False
        self.net, self.model_for = net, key
        self.last_spin.setMaximum(max(1, len(stages(net))))
        self.tree_model = LayerTreeModel(layer_tree(net), preset_plan(net, "last-1"), self)
        self.tree_model.plan_changed.connect(self._plan_changed)
        self.tree.setModel(self.tree_model)
        self.tree.expand(self.tree_model.index(0, 0))
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self._mode_changed()

    def apply_preset(self, preset: str) -> None:
        if self.tree_model is None:
            return
        if not self.tune_radio.isChecked():
            self.tune_radio.setChecked(True)
        self.tree_model.set_plan(preset_plan(self.net, preset))

    def _mode_changed(self) -> None:
        tune = self.tune_radio.isChecked()
        for w in (self.head_button, self.last_button, self.last_spin, self.all_button):
            w.setEnabled(tune)
        if self.tree_model is not None:
            self.tree_model.set_editable(tune)
            self.tree.expand(self.tree_model.index(0, 0))
        self._plan_changed()

    def _plan_changed(self) -> None:
        if self.tree_model is None:
            return
        if self.tune_radio.isChecked():
            plan = self.tree_model.plan
            summary = plan.summary()
            self.state.set_plan("fine-tune", plan.frozen_paths(self.net), summary)
        else:
            summary = preset_plan(self.net, "head").summary() + " (the head)"
            self.state.set_plan("linear-probe", None, summary)
        self.summary_label.setText(summary)
        self.changed.emit()

    def blocker(self) -> str | None:
        if self.building or self.tree_model is None:
            return "Loading the backbone's layers…"
        if self.tune_radio.isChecked() and self.tree_model.plan.trainable() == 0:
            return "Every layer is frozen: check at least the head (classifier) to fine-tune."
        return None
