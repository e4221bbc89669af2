"""StudioState: the choices the wizard has collected so far, shared by its pages.

Pages write their step's choice here and listen for the others'. Nothing here computes:
scanning, building models and training are core calls run by workers.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Signal

from ..core.data.dataset import DatasetIndex
from ..core.engine.config import TrainConfig
from ..core.models.backbones import (
    DEFAULT_BACKBONE,
    BackboneError,
    BackboneSpec,
    get_spec,
)
from ..core.paths import app_data_dir


def settings() -> QSettings:
    """The studio's settings file, inside tlstudio's own data folder (TLSTUDIO_HOME)."""
    path = app_data_dir() / "settings.ini"
    path.parent.mkdir(parents=True, exist_ok=True)
    return QSettings(str(path), QSettings.Format.IniFormat)


class StudioState(QObject):
    dataset_changed = Signal()
    backbone_changed = Signal()
    plan_changed = Signal()
    run_changed = Signal()
    training_changed = Signal(bool)

    def __init__(self) -> None:
        super().__init__()
        self.index: DatasetIndex | None = None
        self.val_fraction = 0.2
        self.seed = 0
        stored = settings().value("last_backbone", DEFAULT_BACKBONE)
        try:
            self.spec: BackboneSpec = get_spec(str(stored))
        except BackboneError:  # a backbone from another version of tlstudio
            self.spec = get_spec(DEFAULT_BACKBONE)
        self.weights_file: str | None = None
        self.mode = "linear-probe"
        self.frozen_paths: list[str] | None = None
        self.trainable_summary = ""
        self.run_dir: Path | None = None
        self.training = False

    # --- setters that notify ----------------------------------------------------------
    def set_dataset(self, index: DatasetIndex | None) -> None:
        self.index = index
        self.dataset_changed.emit()

    def set_backbone(self, spec: BackboneSpec, weights_file: str | None = None) -> None:
        self.spec, self.weights_file = spec, weights_file
        settings().setValue("last_backbone", spec.name)
        self.frozen_paths = None
        self.backbone_changed.emit()

    def set_plan(self, mode: str, frozen_paths: list[str] | None, summary: str) -> None:
        self.mode, self.frozen_paths, self.trainable_summary = mode, frozen_paths, summary
        self.plan_changed.emit()

    def set_run(self, run_dir: Path | None) -> None:
        self.run_dir = run_dir
        self.run_changed.emit()

    def set_training(self, running: bool) -> None:
        self.training = running
        self.training_changed.emit(running)

    def train_config(self, **form) -> TrainConfig:
        """The TrainConfig for the choices so far plus the Train page's form values."""
        return TrainConfig(
            backbone=self.spec.name, weights=self.weights_file, mode=self.mode,
            frozen_paths=self.frozen_paths if self.mode == "fine-tune" else None,
            val_fraction=self.val_fraction, seed=self.seed, **form,
        )
