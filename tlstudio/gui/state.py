"""StudioState: the choices the wizard has collected so far, shared by its pages.

Pages write their step's choice here and listen for the others'. Nothing here computes:
scanning, building models and training are core calls run by workers.

A run belongs to the choices it was trained with. Changing any of them (dataset, split,
backbone, frozen layers, training settings) takes the run away from Results, Predict and
export, and ``outdated`` says why, so no step can answer with a model made for other data.
``generation`` counts those changes; work started under an older generation (a training
that was running meanwhile) is not shown as current.
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
    choices_changed = Signal(str)  # why: something a run depends on changed
    window_changed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.index: DatasetIndex | None = None
        defaults = TrainConfig()
        self.val_fraction = defaults.val_fraction
        self.test_fraction = defaults.test_fraction
        self.seed = 0
        self.window = "file"  # DICOM / 16-bit window (tlstudio.pixels.windows)
        self.frames = "middle"  # multi-frame DICOM: middle frame, or all frames
        stored = settings().value("last_backbone", DEFAULT_BACKBONE)
        try:
            self.spec: BackboneSpec = get_spec(str(stored))
        except BackboneError:  # a backbone from another version of tlstudio
            self.spec = get_spec(DEFAULT_BACKBONE)
        self.weights_file: str | None = None
        self.mode = "recommended"
        self.frozen_paths: list[str] | None = None
        self.probe_first: bool | None = None  # Recommended: None lets the run's gauge decide
        self.trainable_summary = ""
        self.run_dir: Path | None = None
        self.outdated: str | None = None  # why the last run is no longer shown
        self.generation = 0
        self.training = False

    # --- setters that notify ----------------------------------------------------------
    def set_dataset(self, index: DatasetIndex | None) -> None:
        same = (index is not None and self.index is not None and index.root == self.index.root
                and index.items == self.index.items and index.classes == self.index.classes)
        self.index = index
        if not same:
            self.choices_changed_because("the dataset changed")
        self.dataset_changed.emit()

    def set_split(self, val_fraction: float, seed: int,
                  test_fraction: float | None = None) -> None:
        test_fraction = self.test_fraction if test_fraction is None else test_fraction
        if (val_fraction, test_fraction, seed) != (self.val_fraction, self.test_fraction,
                                                   self.seed):
            self.val_fraction, self.test_fraction = val_fraction, test_fraction
            self.seed = seed
            self.choices_changed_because("the validation or test share or the seed changed")

    def set_frames(self, frames: str) -> None:
        if frames != self.frames:
            self.frames = frames
            self.choices_changed_because("the frames taken from multi-frame files changed")

    def set_window(self, window: str) -> None:
        if window != self.window:
            self.window = window
            self.choices_changed_because("the window changed")
            self.window_changed.emit()

    def set_backbone(self, spec: BackboneSpec, weights_file: str | None = None) -> None:
        changed = (spec.name, weights_file) != (self.spec.name, self.weights_file)
        self.spec, self.weights_file = spec, weights_file
        settings().setValue("last_backbone", spec.name)
        self.frozen_paths = None
        if changed:
            self.choices_changed_because("the backbone changed")
        self.backbone_changed.emit()

    def set_plan(self, mode: str, frozen_paths: list[str] | None, summary: str,
                 probe_first: bool | None = None) -> None:
        changed = (mode, frozen_paths, probe_first) != (self.mode, self.frozen_paths,
                                                        self.probe_first)
        self.mode, self.frozen_paths, self.trainable_summary = mode, frozen_paths, summary
        self.probe_first = probe_first
        if changed:
            self.choices_changed_because("the trained layers changed")
        self.plan_changed.emit()

    def choices_changed_because(self, why: str) -> None:
        """Something a run depends on changed: the current run no longer answers for it."""
        self.generation += 1
        if self.run_dir is not None:
            self.outdated = (f"{why[:1].upper()}{why[1:]} after run {self.run_dir.name} was "
                             "trained; its results are no longer shown. Train again (step "
                             "Train).")
            self.run_dir = None
            self.run_changed.emit()
        self.choices_changed.emit(why)

    def set_run(self, run_dir: Path | None, outdated: str | None = None) -> None:
        self.run_dir, self.outdated = run_dir, outdated
        self.run_changed.emit()

    def set_training(self, running: bool) -> None:
        self.training = running
        self.training_changed.emit(running)

    def train_config(self, **form) -> TrainConfig:
        """The TrainConfig for the choices so far plus the Train page's form values."""
        return TrainConfig(
            backbone=self.spec.name, weights=self.weights_file, mode=self.mode,
            frozen_paths=self.frozen_paths if self.mode != "linear-probe" else None,
            probe_first=self.probe_first if self.mode == "recommended" else None,
            val_fraction=self.val_fraction, test_fraction=self.test_fraction,
            seed=self.seed, window=self.window,
            frames=self.frames, **form,
        )
