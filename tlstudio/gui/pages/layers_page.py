"""Step 4, Layers: Recommended (probe, then fine-tune), linear probe or fine-tune, which
layers train (the layer tree), and how far the user's images are from the backbone's
pretraining, stage by stage (the Shift column), with one click to adapt the stages it
points at."""

from __future__ import annotations

from types import SimpleNamespace

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

from ...core.engine.device import pick_device
from ...core.evaluation.domain_shift import far_from_pretraining, stages_to_adapt
from ...core.models.backbones import build_model
from ...core.models.layers import adapt_plan, layer_tree, preset_plan, stages
from ..layer_model import LayerTreeModel
from ..widgets import hint, title
from ..workers import LatestTask, run_task
from .base import Page


class LayersPage(Page):
    title = "Layers"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.model_for: tuple | None = None
        self.tree_model: LayerTreeModel | None = None
        self.net = None
        self.tune_plan = None
        self.building = False

        self.shifts: dict[str, float] = {}
        self.adapt: list[str] | None = None  # the stages the gauge recommends; None: unknown
        self.far = False  # the gauge found early stages shifted: no probe first
        self.measured_for: tuple | None = None
        self._measure_task = LatestTask(self)

        layout = QVBoxLayout(self)
        layout.addWidget(title("What learns"))
        self.recommended_radio = QRadioButton(
            "Recommended: the head first, then the layers your images need")
        self.probe_radio = QRadioButton("Linear probe (fastest)")
        self.tune_radio = QRadioButton("Fine-tune the layers checked below")
        self.mode_group = QButtonGroup(self)
        explanations = (
            "A linear probe first, then fine-tuning from it: the stages marked 'adapt' in the "
            "Shift column learn with small steps (smaller for earlier layers); epochs and "
            "steps follow the number of images. Images far from the pretraining ones (early "
            "stages shifted) skip the probe: their features must move.",
            "The whole backbone stays frozen; its features are computed once and only the new "
            "head learns.",
            "You choose: slower; lets the backbone adapt to images unlike everyday photos "
            "(scans, micrographs).",
        )
        radios = (self.recommended_radio, self.probe_radio, self.tune_radio)
        for radio, text in zip(radios, explanations, strict=True):
            self.mode_group.addButton(radio)
            layout.addWidget(radio)
            explanation = hint(text)
            explanation.setContentsMargins(24, 0, 0, 4)
            layout.addWidget(explanation)
        self.recommended_radio.setChecked(True)
        for radio in radios:
            radio.toggled.connect(lambda on: on and self._mode_changed())

        shift_row = QHBoxLayout()
        self.shift_label = QLabel("")
        self.shift_label.setWordWrap(True)
        self.apply_button = QPushButton("Fine-tune what is recommended")
        self.apply_button.setToolTip("Switch to Fine-tune with the stages marked 'adapt' "
                                     "checked (and what follows them), to edit further.")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply_recommendation)
        shift_row.addWidget(self.shift_label, 1)
        shift_row.addWidget(self.apply_button)
        layout.addLayout(shift_row)

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
        state.window_changed.connect(self._forget_shifts)

    def _invalidate(self) -> None:
        self.model_for = None
        self._forget_shifts()

    def on_enter(self) -> None:
        key = (self.state.spec.name, len(self.state.index.classes) if self.state.index else 2)
        if key == self.model_for or self.building:
            self._measure()
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
        self.tune_plan = preset_plan(net, "last-1")  # Fine-tune's plan, kept across modes
        self.tree_model = LayerTreeModel(layer_tree(net), self.tune_plan, self)
        self.tree_model.plan_changed.connect(self._plan_changed)
        self.tree.setModel(self.tree_model)
        self.tree.expand(self.tree_model.index(0, 0))
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self._mode_changed()
        self._measure()

    # --- the stage-shift gauge ------------------------------------------------------------
    def _measure_key(self) -> tuple | None:
        state = self.state
        if state.index is None:
            return None
        return (state.spec.name, state.weights_file, id(state.index), state.window,
                state.frames)

    def _forget_shifts(self) -> None:
        """Shifts belong to the images, backbone and window they were measured with."""
        self._measure_task.cancel()
        self.shifts, self.adapt, self.measured_for = {}, None, None
        self.far = False
        self.apply_button.setEnabled(False)
        self.shift_label.setText("")
        if self.tree_model is not None:
            self.tree_model.set_shifts({}, [])
            self.tree.expand(self.tree_model.index(0, 0))
            self._plan_changed()

    def _measure(self) -> None:
        """Measure each stage's shift on the user's images in the background (once per
        dataset, backbone and window)."""
        from ...core.studies.advisor import stage_shifts

        key = self._measure_key()
        if key is None or key == self.measured_for or self.tree_model is None:
            if key is None:
                self.shift_label.setText("Choose your images to see how far they are from "
                                         "the backbone's pretraining, stage by stage.")
            return
        self.measured_for = key
        name, weights, _, window, frames = key
        index = self.state.index
        self.shift_label.setText("Measuring how far your images are from the backbone's "
                                 "pretraining, stage by stage …")

        def work(token):
            return stage_shifts(index, name, control=SimpleNamespace(checkpoint=token.check),
                                window=window, frames=frames, weights=weights)

        def failed(message: str) -> None:
            self.shift_label.setText(f"Shift from pretraining not measured: {message}")
            self.measured_for = None

        self._measure_task.start(work, on_done=self._show_shifts, on_error=failed)

    def _show_shifts(self, shifts: list[dict]) -> None:
        adapt, self.adapt = stages_to_adapt(shifts, stages(self.net),
                                            pick_device("auto").device.type)
        self.far = far_from_pretraining(adapt, stages(self.net))
        if not shifts:
            self.shift_label.setText(
                f"{self.state.spec.display_name} has no BatchNorm statistics to compare with: "
                "Recommended adapts its last stage.")
        else:
            self.shifts = {s["stage"]: s["shift"] for s in shifts}
            largest = max(shifts, key=lambda s: s["shift"])
            left = [s for s in adapt if s not in self.adapt]
            self.shift_label.setText(
                f"Your images move {largest['stage']} furthest from its pretraining "
                f"(shift {largest['shift']:.2f}); recommended to adapt: "
                f"<b>{', '.join(self.adapt)}</b>."
                + (f" {', '.join(left)} would adapt too on a GPU (on this CPU it would run the "
                   "whole network every batch; check it in Fine-tune to adapt it anyway)."
                   if left else ""))
        self.tree_model.set_shifts(self.shifts, self.adapt)
        self.tree.expand(self.tree_model.index(0, 0))
        self.apply_button.setEnabled(True)
        self._plan_changed()

    def apply_recommendation(self) -> None:
        """One click: Fine-tune with the recommended stages checked."""
        if self.tree_model is None or self.adapt is None:
            return
        self.tune_plan = adapt_plan(self.net, self.adapt)
        if self.tune_radio.isChecked():
            self.tree_model.set_plan(self.tune_plan)
        else:
            self.tune_radio.setChecked(True)

    def apply_preset(self, preset: str) -> None:
        if self.tree_model is None:
            return
        self.tune_plan = preset_plan(self.net, preset)
        if self.tune_radio.isChecked():
            self.tree_model.set_plan(self.tune_plan)
        else:
            self.tune_radio.setChecked(True)

    def _mode_changed(self) -> None:
        tune = self.tune_radio.isChecked()
        if self.tree_model is not None and self.probe_radio.isChecked():
            self.tree_model.show_plan(preset_plan(self.net, "head"))  # what really trains
        elif self.tree_model is not None and tune:
            self.tree_model.show_plan(self.tune_plan)  # the user's own choice, kept
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
            plan = self.tune_plan = self.tree_model.plan
            summary = plan.summary()
            self.state.set_plan("fine-tune", plan.frozen_paths(self.net), summary)
        elif self.recommended_radio.isChecked():
            if self.adapt is None:  # measured when the run starts, on its training images
                self.tree_model.show_plan(preset_plan(self.net, "head"))
                summary = ("A linear probe first, then fine-tuning the stages your images "
                           "need (measured when training starts)")
                self.state.set_plan("recommended", None, summary)
            else:
                plan = adapt_plan(self.net, self.adapt)
                self.tree_model.show_plan(plan)
                layers = ", ".join(self.adapt)
                summary = (f"Fine-tuning {layers} from a fresh head (your images shift early "
                           "stages: the features must move; a head probed first would hold "
                           "them back): " if self.far else
                           f"A linear probe first, then fine-tuning {layers}: ") + plan.summary()
                self.state.set_plan("recommended", plan.frozen_paths(self.net), summary,
                                    probe_first=not self.far)
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
