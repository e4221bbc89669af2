"""Step 2, Backbone: the registry as readable cards, and importing a local weights file."""

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
from ..workers import run_task
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
        badge = QLabel("available offline" if offline else "needs download")
        badge.setObjectName("badgeOk" if offline else "badgeWarn")
        layout.addWidget(badge, 0, 2)
        facts = (f"{info['parameters'] / 1e6:.1f} M parameters · input "
                 f"{info['input_size'][0]}×{info['input_size'][1]} · {info['license']}")
        layout.addWidget(QLabel(facts), 1, 0, 1, 3)
        layout.addWidget(QLabel(f"Pretrained on {info['pretrained_on']}"), 2, 0, 1, 3)
        description = QLabel(info["description"] + f" Weights: {info['source']}.")
        description.setWordWrap(True)
        description.setObjectName("hint")
        layout.addWidget(description, 3, 0, 1, 3)
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
