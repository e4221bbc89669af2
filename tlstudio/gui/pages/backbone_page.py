"""Step 3, Backbone: the registry as readable cards, and importing a local weights file."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QButtonGroup,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from ...core.models.backbones import REGISTRY, BackboneSpec
from ..widgets import hint, title
from ..workers import LatestTask, run_task
from .base import Page


class BackboneCard(QFrame):
    """One registry entry: what it is, what it learned from, and whether it is here."""

    def __init__(self, spec: BackboneSpec, info: dict, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.setObjectName("card")
        layout = QGridLayout(self)
        self.radio = QRadioButton(info["display_name"])
        self.radio.setObjectName("cardTitle")
        layout.addWidget(self.radio, 0, 0, 1, 2)
        offline = info["available_offline"]
        badge = QLabel(info["availability"])
        badge.setObjectName("badgeOk" if offline else "badgeWarn")
        if info["what_to_do"]:
            badge.setToolTip(info["what_to_do"][0].upper() + info["what_to_do"][1:] + ".")
        layout.addWidget(badge, 0, 2)
        facts = (f"{info['parameters'] / 1e6:.1f} M parameters · input "
                 f"{info['input_size'][0]}×{info['input_size'][1]} · {info['license']}")
        layout.addWidget(QLabel(facts), 1, 0, 1, 3)
        layout.addWidget(QLabel(f"Pretrained on {info['pretrained_on']}"), 2, 0, 1, 3)
        description = QLabel(info["description"] + f" Weights: {info['source']}.")
        description.setWordWrap(True)
        description.setObjectName("hint")
        layout.addWidget(description, 3, 0, 1, 3)
        self.advice = QLabel("")  # the advisor's measurement on the user's images
        self.advice.setObjectName("advice")
        self.advice.setWordWrap(True)
        layout.addWidget(self.advice, 4, 0, 1, 3)
        self.available = offline


class BackbonePage(Page):
    title = "Backbone"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        layout = QVBoxLayout(self)
        layout.addWidget(title("Pretrained backbone"))
        layout.addWidget(hint(
            "The network that already knows edges, textures and shapes from millions of photos. "
            "Small ones train fast on a CPU; 'needs download' entries fetch their weights once "
            "(or take a weights file you import)."))
        advise_row = QHBoxLayout()
        self.advise_button = QPushButton("Which backbone suits my images?")
        self.advise_button.setToolTip(
            "Measures every backbone whose weights are here on your images, without training: "
            "how well its frozen features separate your classes (LogME) and what a simple "
            "classifier on them reaches in a quick cross-validation. About a minute on a CPU.")
        self.advise_button.clicked.connect(self.start_advice)
        self.use_button = QPushButton("Use the recommended one")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(lambda: self.recommended and self.select(self.recommended))
        self.advice_label = QLabel("")
        self.advice_label.setWordWrap(True)
        advise_row.addWidget(self.advise_button)
        advise_row.addWidget(self.use_button)
        advise_row.addWidget(self.advice_label, 1)
        layout.addLayout(advise_row)
        self.advice: dict | None = None
        self.recommended: str | None = None
        self._advice_task = LatestTask(self)
        state.dataset_changed.connect(self.clear_advice)
        state.window_changed.connect(self.clear_advice)  # advice saw the old pixels
        self.cards: dict[str, BackboneCard] = {}
        self.group = QButtonGroup(self)
        grid_host = QWidget()
        self.grid = QGridLayout(grid_host)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(grid_host)
        layout.addWidget(scroll, 1)
        row = QHBoxLayout()
        self.import_button = QPushButton("Import weights file…")
        self.import_button.clicked.connect(self._import_weights)
        self.weights_label = QLabel("")
        self.weights_label.setWordWrap(True)
        row.addWidget(self.import_button)
        row.addWidget(self.weights_label, 1)
        layout.addLayout(row)
        self.loading = True
        # Facts need timm's configs and a meta-device model per entry: gather off-thread.
        run_task(lambda: {name: spec.as_dict() for name, spec in REGISTRY.items()},
                 on_done=self._build_cards, on_error=self.weights_label.setText, parent=self)

    def _build_cards(self, infos: dict) -> None:
        for i, (name, info) in enumerate(infos.items()):
            card = BackboneCard(REGISTRY[name], info)
            self.cards[name] = card
            self.group.addButton(card.radio)
            card.radio.toggled.connect(lambda on, n=name: on and self._chosen(n))
            self.grid.addWidget(card, i // 2, i % 2)
        self.loading = False
        self.cards[self.state.spec.name].radio.setChecked(True)
        self.changed.emit()

    # --- the advisor ----------------------------------------------------------------------
    def clear_advice(self) -> None:
        """Advice belongs to the images it measured: another dataset drops it."""
        self._advice_task.cancel()
        self.advice, self.recommended = None, None
        self.use_button.setEnabled(False)
        self.advise_button.setEnabled(True)
        self.advice_label.setText("")
        for card in self.cards.values():
            card.advice.setText("")

    def start_advice(self) -> None:
        from ...core.studies.advisor import advise

        index = self.state.index
        if index is None:
            self.advice_label.setText("Choose your images on the Data step first.")
            return
        self.clear_advice()
        window, frames = self.state.window, self.state.frames
        self.advise_button.setEnabled(False)
        self.advice_label.setText("Measuring the backbones on your images …")

        def work(token, progress):
            from ...core.engine.events import StageProgress

            def emit(event) -> None:
                token.check()
                if isinstance(event, StageProgress) and event.stage == "measuring backbones":
                    progress(event.done, event.total)

            return advise(index, emit=emit, window=window, frames=frames)

        self._advice_task.start(work, on_done=self._show_advice, on_error=self._advice_failed,
                                on_progress=lambda d, t: self.advice_label.setText(
                                    f"Measuring the backbones on your images: {d} of {t} "
                                    "done …"))

    def _advice_failed(self, message: str) -> None:
        self.advise_button.setEnabled(True)
        self.advice_label.setText(f"No advice: {message}")

    def _show_advice(self, advice: dict) -> None:
        self.advice, self.recommended = advice, advice["recommended"]
        self.advise_button.setEnabled(True)
        self.use_button.setEnabled(True)
        self.advice_label.setText(advice["sentence"])
        for rank, row in enumerate(advice["ranking"], 1):
            card = self.cards.get(row["backbone"])
            if card is not None:
                star = " · recommended" if row["backbone"] == self.recommended else ""
                card.advice.setText(
                    f"<b>#{rank} on your images{star}</b>: quick probe "
                    f"{row['probe_accuracy']:.0%} ± {row['probe_accuracy_std']:.0%}, LogME "
                    f"{row['score']:.3f} ("
                    + ("features from the cache" if row["features_cached"]
                       else f"{row['seconds']:.0f} s") + ")")
        for row in advice["skipped"]:
            card = self.cards.get(row["backbone"])
            if card is not None:
                card.advice.setText(f"Not measured: {row['skipped']}")

    def select(self, name: str) -> None:
        self.cards[name].radio.setChecked(True)

    def _chosen(self, name: str) -> None:
        if self.state.spec.name != name or self.state.weights_file:
            self.state.set_backbone(REGISTRY[name])
        card = self.cards[name]
        self.weights_label.setText(
            "" if card.available else
            f"{card.spec.display_name} downloads its weights when training starts (internet "
            "needed once). Offline, import a weights file or pick an offline backbone.")
        self.changed.emit()

    def _import_weights(self) -> None:
        file, _ = QFileDialog.getOpenFileName(
            self, "Weights file", str(Path.home()), "Weights (*.safetensors *.pth *.pt *.bin)")
        if file:
            self.import_weights(Path(file))

    def import_weights(self, file: Path) -> None:
        """Check the file fits the chosen backbone (off-thread), then use it."""
        from ...core.models.backbones import build_model

        spec = self.state.spec
        self.weights_label.setText(f"Checking {file.name} …")

        def ok(_model) -> None:
            self.state.set_backbone(spec, str(file))
            self.weights_label.setText(f"Using {file.name} for {spec.display_name}.")
            self.changed.emit()

        run_task(lambda: build_model(spec, 2, weights=file), on_done=ok,
                 on_error=lambda m: self.weights_label.setText(f"Cannot use {file.name}: {m}"),
                 parent=self)

    def blocker(self) -> str | None:
        return "Reading the backbone registry…" if self.loading else None
