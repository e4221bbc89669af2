"""Step 5, Train: settings with working defaults, Start/Pause/Stop, live curves, ETA, log;
start from an earlier run (probe, then fine-tune), and resume runs that did not finish."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from ...core.data.preprocess import AUGMENTATIONS
from ...core.engine.config import MODE_DEFAULTS
from ...core.engine.device import pick_device
from ...core.glossary import explain
from ...core.runs import launch
from ...core.runs.history import list_runs, new_run_dir, read_config, read_epochs
from ...errors import UserError
from ..widgets import PlotNote, explained, title
from ..workers import TrainingThread, TrainingWorker
from .base import Page

AUTO = "auto"
MODE_NAMES = {"recommended": "Recommended (probe, then fine-tune)",
              "linear-probe": "Linear probe", "fine-tune": "Fine-tune"}


class TrainPage(Page):
    title = "Train"
    training_finished = Signal(dict)

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.runner: TrainingThread | None = None
        self._active = False  # a run started and its end not yet shown
        self.current_run_dir: Path | None = None
        self.finished_metrics: dict | None = None
        self._mode_filled: str | None = None
        self._filling = False  # the page itself sets fields: not a user's change
        self._launched_generation = 0
        self._batches_total = 0
        self._batches_done = 0
        self._epochs_total = 0
        self._step_text = ""  # what the run does now ("features: 160/240", "Epoch 2 of 8")
        self._speed = ""  # "316 images/s" during the epochs
        self.time_left: float | None = None  # the forecast shown (core/engine/forecast.py)
        self._time_left_text = ""

        layout = QVBoxLayout(self)
        layout.addWidget(title("Training"))
        top = QHBoxLayout()
        form = QFormLayout()
        self.mode_label = QLabel("")
        self.mode_label.setWordWrap(True)
        self.mode_label.setMaximumWidth(420)
        form.addRow(explained("Mode:", "mode", self.mode_label), self.mode_label)
        # 0 shows "auto": the mode's default, or in the Recommended mode a value chosen from
        # the number of images and the device when the run starts (config.json records it)
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 500)
        self.epochs.setSpecialValueText(AUTO)
        form.addRow(explained("Epochs:", "epochs", self.epochs), self.epochs)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(5)
        self.lr.setRange(0.0, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setSpecialValueText(AUTO)
        form.addRow(explained("Learning rate:", "learning_rate", self.lr), self.lr)
        self.batch = QSpinBox()
        self.batch.setRange(1, 512)
        self.batch.setValue(32)
        form.addRow(explained("Batch size:", "batch_size", self.batch), self.batch)
        self.augmentation = QComboBox()
        self.augmentation.addItems(AUGMENTATIONS)
        self.augmentation.setCurrentText("light")
        form.addRow(explained("Augmentation:", "augmentation", self.augmentation),
                     self.augmentation)
        self.class_weights = QCheckBox("balance classes in the loss")
        form.addRow(explained("Class weights:", "class_weights", self.class_weights),
                     self.class_weights)
        self.scratch = QComboBox()
        for text, value in (("auto (Recommended, small data)", None), ("yes", True),
                            ("no", False)):
            self.scratch.addItem(text, value)
        self.scratch.setToolTip(
            "Also train the same backbone from random weights, with the same images and "
            "epochs, to measure what pretraining gains (or warn when it does not help). Auto: "
            "in the Recommended mode under 500 images on a CPU, 2,000 on a GPU.")
        self.scratch.setSizeAdjustPolicy(  # its long first choice must not widen the form
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.scratch.setMinimumContentsLength(14)
        form.addRow(explained("Compare from scratch:", "compare_scratch"), self.scratch)
        self.patience = QSpinBox()
        self.patience.setRange(0, 100)
        self.patience.setSpecialValueText(AUTO)
        self.patience.setSuffix(" epochs")
        form.addRow(explained("Stop if no gain for:", "patience", self.patience),
                     self.patience)
        self.threshold_rule = QComboBox()
        for text, rule in (("balanced", "youden"), ("sensitivity ≥", "sensitivity"),
                           ("specificity ≥", "specificity")):
            self.threshold_rule.addItem(text, rule)
        self.threshold_rule.setToolTip(
            "Two classes: how the validation images choose the probability above which the "
            "second class is called. Balanced: Youden's J (sensitivity + specificity - 1 at "
            "its highest). 'Sensitivity ≥ 95 %' misses few positives at the "
            "cost of more false alarms. Predict and export use the same threshold.")
        self.threshold_target = QDoubleSpinBox()
        self.threshold_target.setRange(50.0, 100.0)
        self.threshold_target.setValue(95.0)
        self.threshold_target.setSuffix(" %")
        self.threshold_target.setEnabled(False)
        self.threshold_rule.currentIndexChanged.connect(
            lambda _i: self.threshold_target.setEnabled(
                self.threshold_rule.currentData() != "youden"))
        self.threshold_rule.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.threshold_rule.setMinimumContentsLength(8)
        self.threshold_target.setMaximumWidth(90)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_rule, 1)
        threshold_row.addWidget(self.threshold_target)
        form.addRow(explained("Threshold:", "threshold", self.threshold_target), threshold_row)
        self.folds = QSpinBox()
        self.folds.setRange(0, 10)
        self.folds.setSpecialValueText("off")
        self.folds.setToolTip("Small datasets: train K models, each tested on a different "
                              "fifth (say) of the images, for a mean and spread that do not "
                              "depend on one split; then the final model on every image but "
                              "a validation share. Takes K+1 trainings.")
        self.folds_final = QComboBox()
        self.folds_final.addItem("then final on all", "all")
        self.folds_final.addItem("then final on the split", "split")
        self.folds_final.setToolTip(
            "After the folds: train the final model on every image but a validation share "
            "(the folds are the estimate), or on the usual training/validation/test split "
            "(a held-out test as well)")
        self.folds_final.setEnabled(False)
        self.folds_final.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folds_final.setMinimumContentsLength(10)
        self.folds.valueChanged.connect(lambda k: self.folds_final.setEnabled(k > 0))
        folds_row = QHBoxLayout()
        folds_row.addWidget(self.folds)
        folds_row.addWidget(self.folds_final, 1)
        form.addRow(explained("Folds (CV):", "folds"), folds_row)
        self.device_label = QLabel(pick_device("auto").description)
        self.gpus = QSpinBox()
        self.gpus.setToolTip(explain("gpus"))
        self.gpus_label = QLabel("GPUs:")
        device_row = QHBoxLayout()
        device_row.addWidget(self.device_label, 1)
        device_row.addWidget(self.gpus_label)
        device_row.addWidget(self.gpus)
        form.addRow(explained("Device:", "device", self.device_label), device_row)
        self.refresh_gpus()
        self.start_from = QComboBox()
        self.unfinished = QComboBox()
        self.unfinished.setToolTip("Runs that were stopped, interrupted or killed")
        for combo in (self.start_from, self.unfinished):  # long run names must not widen
            combo.setSizeAdjustPolicy(  # the window beyond a small screen
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(6)
        for field in (self.epochs, self.lr, self.batch, self.augmentation, self.patience):
            field.setMaximumWidth(180)
        top.addLayout(form)

        controls = QVBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.pause_button = QPushButton("Pause")
        self.stop_button = QPushButton("Stop")
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.toggle_pause)
        self.stop_button.clicked.connect(self.stop)
        for b in (self.start_button, self.pause_button, self.stop_button):
            controls.addWidget(b)
        controls.addStretch(1)
        top.addLayout(controls)
        self.status_label = QLabel("Ready.")
        self.status_label.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(self.status_label)
        self.progress = QProgressBar()
        self.progress.setFormat("%p %")
        side.addWidget(self.progress)
        self.rate_label = QLabel("")
        self.rate_label.setWordWrap(True)
        side.addWidget(self.rate_label)
        side.addStretch(1)
        top.addLayout(side, 1)
        layout.addLayout(top)
        runs_row = QHBoxLayout()
        runs_row.addWidget(explained("Start from:", "start_from", self.start_from))
        runs_row.addWidget(self.start_from, 1)
        runs_row.addSpacing(16)
        runs_row.addWidget(QLabel("Unfinished runs:"))
        runs_row.addWidget(self.unfinished, 1)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the chosen run after its last completed epoch")
        self.resume_button.clicked.connect(self.resume_selected)
        runs_row.addWidget(self.resume_button)
        layout.addLayout(runs_row)

        plots = QHBoxLayout()
        self.loss_plot = pg.PlotWidget(background="w", title="Loss")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.loss_plot.setLabel("bottom", "epoch")
        self.train_curve = self.loss_plot.plot([], [], pen=pg.mkPen((70, 130, 180), width=1),
                                               name="training (per batch)")
        self.val_curve = self.loss_plot.plot([], [], pen=pg.mkPen((220, 90, 40), width=2),
                                             symbol="o", symbolSize=6,
                                             symbolBrush=(220, 90, 40), name="validation")
        self.acc_plot = pg.PlotWidget(background="w", title="Validation accuracy")
        self.acc_plot.setLabel("bottom", "epoch")
        self.acc_plot.setYRange(0, 1)
        self.acc_curve = self.acc_plot.plot([], [], pen=pg.mkPen((40, 160, 90), width=2),
                                            symbol="o", symbolSize=6, symbolBrush=(40, 160, 90))
        for plot in (self.loss_plot, self.acc_plot):
            plot.setMinimumSize(220, 160)
            plots.addWidget(plot)
        self.loss_note = PlotNote(self.loss_plot, "no data yet: the loss shows from the "
                                                  "first batches",
                                  hide=(self.loss_plot.getPlotItem().legend,))
        self.acc_note = PlotNote(self.acc_plot, "no data yet: accuracy on the validation "
                                                "images shows after each epoch")
        layout.addLayout(plots, 1)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setMaximumHeight(110)
        self.log.setMinimumHeight(60)
        layout.addWidget(self.log)
        self._reset_curves()
        self._set_running(False)
        for spin in (self.epochs, self.lr, self.batch, self.patience):
            spin.valueChanged.connect(self._settings_edited)
        self.augmentation.currentTextChanged.connect(self._settings_edited)
        self.class_weights.toggled.connect(self._settings_edited)
        self.threshold_rule.currentIndexChanged.connect(self._settings_edited)
        self.scratch.currentIndexChanged.connect(self._settings_edited)
        self.threshold_target.valueChanged.connect(self._settings_edited)
        self.folds.valueChanged.connect(self._settings_edited)
        self.folds_final.currentIndexChanged.connect(self._settings_edited)
        self.start_from.activated.connect(self._settings_edited)
        state.run_changed.connect(self._run_changed)

    def _settings_edited(self, *_args) -> None:
        if not self._filling and not self.running:
            self.state.choices_changed_because("the training settings changed")

    def _run_changed(self) -> None:
        if not self.running and self.state.run_dir is None and self.state.outdated:
            self.status_label.setText("<b>Out of date.</b> " + self.state.outdated)
            self.changed.emit()

    # --- form ---------------------------------------------------------------------------
    def on_enter(self) -> None:
        mode = self.state.mode
        self.mode_label.setText(
            MODE_NAMES[mode] + f" · {self.state.spec.display_name}\n"
            f"{self.state.trainable_summary}")
        if mode != self._mode_filled:  # defaults that work for the chosen mode
            defaults = MODE_DEFAULTS[mode]
            self._filling = True
            try:
                self.epochs.setValue(defaults.get("epochs", 0))
                self.lr.setValue(defaults.get("lr", 0.0))
                self.patience.setValue(defaults.get("patience", 0))
            finally:
                self._filling = False
            self._mode_filled = mode
        self.refresh_runs()

    def refresh_runs(self) -> None:
        """Earlier runs to start from (same backbone and classes, finished) and runs that
        can be resumed; reads their JSON files only."""
        runs = list_runs()
        classes = self.state.index.classes if self.state.index is not None else None
        root = str(self.state.index.root) if self.state.index is not None else None
        chosen, chosen_resume = self.start_from.currentData(), self.unfinished.currentData()
        self.start_from.clear()
        self.start_from.addItem("the pretrained weights", None)
        for run in runs:
            if run.status == "finished" and run.backbone == self.state.spec.name:
                try:
                    same = read_config(run.dir)["classes"] == classes
                except (OSError, ValueError, KeyError, UserError):
                    same = False
                if same:
                    self.start_from.addItem(f"run {run.dir.name} ({run.mode})", str(run.dir))
        self.unfinished.clear()
        for run in runs:  # only runs of the dataset loaded now: a resumed run becomes the
            if run.resumable and _dataset_root(run.dir) == root:  # one Results shows
                self.unfinished.addItem(run.describe(), str(run.dir))
        self.resume_button.setEnabled(self.unfinished.count() > 0 and not self.running)
        if not self.unfinished.count():
            self.unfinished.addItem("none")
        self.unfinished.setEnabled(self.resume_button.isEnabled())
        for combo, value in ((self.start_from, chosen), (self.unfinished, chosen_resume)):
            found = combo.findData(value)
            if value is not None and found >= 0:
                combo.setCurrentIndex(found)
    def refresh_gpus(self) -> None:
        """The GPUs choice, shown on a machine with several GPUs (and an installation that
        can start processes)."""
        count = launch.gpu_count() if launch.can_launch() is None else 0
        self.gpus.setRange(1, max(1, count))
        self.gpus.setValue(max(1, count))
        for w in (self.gpus, self.gpus_label):
            w.setVisible(count > 1)

    def processes(self) -> int:
        """How many processes share the next run (1: this one, in a thread)."""
        return self.gpus.value() if self.gpus.maximum() > 1 else 1

    def form_values(self) -> dict:
        return dict(epochs=self.epochs.value() or None, lr=self.lr.value() or None,
                    batch_size=self.batch.value(),
                    augmentation=self.augmentation.currentText(),
                    class_weights=self.class_weights.isChecked(),
                    patience=self.patience.value() or None, threshold=self.threshold(),
                    compare_scratch=self.scratch.currentData())

    def threshold(self) -> str:
        """The threshold rule as the CLI writes it: youden | sensitivity=S | specificity=S."""
        rule = self.threshold_rule.currentData()
        return rule if rule == "youden" else f"{rule}={self.threshold_target.value() / 100:g}"

    # --- running ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """From Start until the page has shown the end (buttons back, results taken): the
        thread itself stops a moment earlier, and in that moment the page still runs."""
        return self._active

    def start(self) -> None:
        if self.running or self.state.index is None:
            return
        config = self.state.train_config(**self.form_values(),
                                         init_from=self.start_from.currentData())
        out = new_run_dir(config.backbone)
        folds = self.folds.value()
        self._launch(TrainingWorker(config, self.state.index, out, folds=folds,
                                    final=self.folds_final.currentData(),
                                    processes=1 if folds else self.processes()), out)

    def resume_selected(self) -> None:
        run_dir = self.unfinished.currentData()
        if self.running or not run_dir:
            return
        out = Path(run_dir)
        self._launch(TrainingWorker(None, None, out, resume=True,
                                    processes=self.processes()), out)
        for row in read_epochs(out):  # the epochs already done, so the curves read whole
            if "train_loss" in row:
                self._epoch({**row, "epochs": self.epochs.value(), "improved": False},
                            log=False)

    def _launch(self, worker: TrainingWorker, out: Path) -> None:
        self.current_run_dir = out
        self._launched_generation = self.state.generation
        self._reset_curves()
        self.finished_metrics = None
        self.log.clear()
        self.write_log(f"Run folder: {out}")
        worker.stage_progress.connect(self._stage)
        worker.epoch_started.connect(self._epoch_started)
        worker.batch_done.connect(self._batch)
        worker.epoch_done.connect(self._epoch)
        worker.notice.connect(self.write_log)
        worker.finished.connect(self._finished)  # a bound method: runs in the GUI thread
        worker.failed.connect(self._failed)
        worker.time_left.connect(self._time_left)
        self.runner = TrainingThread(worker, self)
        self.runner.ended.connect(self._ended)
        self._batches_done = 0
        self.runner.start()
        self._active = True  # before the buttons: the Next button's hint asks whether it runs
        self._set_running(True)
        self.pause_button.setEnabled(worker.processes == 1)
        if self.state.run_dir is not None:  # its results are the previous ones from now on
            self.state.set_run(None, outdated=f"a new run ({out.name}) is training; the "
                                              f"previous run {self.state.run_dir.name} is "
                                              "no longer shown.")

    def toggle_pause(self) -> None:
        if not (self.running and self.runner.running):
            return
        worker = self.runner.worker
        if worker.control.paused:
            worker.resume()
            self.pause_button.setText("Pause")
        else:
            worker.pause()
            self.pause_button.setText("Resume")
        self._show_step()
        self._show_rate()

    @property
    def paused(self) -> bool:
        return self.running and self.runner.running and self.runner.worker.control.paused

    def _show_step(self, text: str | None = None) -> None:
        """The status line: what the run does now, and that it is paused for as long as it
        is (events of the batch in flight keep arriving after Pause)."""
        if text is not None:
            self._step_text = text
        if self.paused:
            where = f" at {self._step_text}" if self._step_text else ""
            self.status_label.setText(f"<b>Paused</b>{where}: the work stops after the "
                                      "current batch. Press Resume to go on.")
        else:
            self.status_label.setText(self._step_text or "Running…")

    def _show_rate(self) -> None:
        if self.paused:
            self.rate_label.setText("Paused: no time runs out while paused.")
            return
        self.rate_label.setText(" · ".join(t for t in (self._speed, self._time_left_text) if t))

    def _time_left(self, seconds: float, text: str) -> None:
        self.time_left = None if seconds < 0 else seconds
        self._time_left_text = text
        self._show_rate()

    def stop(self) -> None:
        if self.running and self.runner.running:
            self.runner.worker.stop()
            self._show_step("Stopping after the current batch…")

    def stop_and_wait(self) -> None:
        """Stop and wait for the worker to finish its batch and save (never cut off)."""
        if self.running and self.runner.running:
            self.runner.stop_and_wait()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.pause_button.setEnabled(running)
        self.stop_button.setEnabled(running)
        self.pause_button.setText("Pause")
        for w in (self.epochs, self.lr, self.batch, self.augmentation, self.class_weights,
                  self.patience, self.start_from, self.unfinished, self.resume_button,
                  self.threshold_rule, self.folds, self.folds_final, self.scratch, self.gpus):
            w.setEnabled(not running)
        self.folds_final.setEnabled(not running and self.folds.value() > 0)
        if not running:
            self.refresh_runs()
        if self.state.training != running:
            self.state.set_training(running)
        self.changed.emit()

    # --- events -------------------------------------------------------------------------
    def write_log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _reset_curves(self) -> None:
        self.train_points: tuple[list, list] = ([], [])
        self.val_points: tuple[list, list] = ([], [])
        self.acc_points: tuple[list, list] = ([], [])
        for curve in (self.train_curve, self.val_curve, self.acc_curve):
            curve.setData([], [])
        self.loss_note.show_when(True)
        self.acc_note.show_when(True)
        self.progress.setValue(0)
        self._step_text = self._speed = self._time_left_text = ""
        self.time_left, self._epochs_total = None, 0
        self.rate_label.setText("")

    def _stage(self, stage: str, done: int, total: int) -> None:
        self._speed = ""  # a step's speed is not the epochs' speed
        self._show_step(f"{stage}: {done:,}/{total:,}" if total > 1 else f"{stage}…")
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def _epoch_started(self, epoch: int, epochs: int) -> None:
        self._epochs_total = epochs  # the run's own count (recommended chooses it)
        self._show_step(f"Epoch {epoch} of {epochs}")

    def _batch(self, info: dict) -> None:
        epochs = self._epochs_total or self.epochs.value()
        self._batches_total = info["batches"] * epochs
        self._batches_done = (info["epoch"] - 1) * info["batches"] + info["batch"]
        self.progress.setRange(0, self._batches_total)
        self.progress.setValue(self._batches_done)
        x = info["epoch"] - 1 + info["batch"] / info["batches"]
        self.train_points[0].append(x)
        self.train_points[1].append(info["loss"])
        self.train_curve.setData(*self.train_points)
        self.loss_note.show_when(False)
        self._speed = f"{info['images_per_s']:,.0f} images/s"
        self._show_rate()

    def _epoch(self, info: dict, log: bool = True) -> None:
        self.val_points[0].append(info["epoch"])
        self.val_points[1].append(info["val_loss"])
        self.acc_points[0].append(info["epoch"])
        self.acc_points[1].append(info["val_accuracy"])
        self.val_curve.setData(*self.val_points)
        self.acc_curve.setData(*self.acc_points)
        self.loss_note.show_when(False)
        self.acc_note.show_when(False)
        if not log:
            return
        star = "  (best so far, saved)" if info["improved"] else ""
        self.write_log(f"epoch {info['epoch']}/{info['epochs']}: train loss "
                       f"{info['train_loss']:.4f}, val loss {info['val_loss']:.4f}, "
                       f"val accuracy {info['val_accuracy']:.3f}{star}")

    def _ended(self) -> None:
        self._active = False
        self._set_running(False)
        # a rate and a time left of a run that ended mean nothing
        self._speed = self._time_left_text = ""
        self.time_left = None
        self.rate_label.setText("")

    def _finished(self, info: dict) -> None:
        """Slots of the worker's signals are methods of this page, never lambdas: Qt runs a
        plain callable in the thread of the sender, here the training thread."""
        out = self.current_run_dir
        metrics = info.get("metrics") or {}
        if not metrics:
            self.status_label.setText("Stopped before the first epoch finished; nothing saved.")
            return
        if self.state.generation != self._launched_generation:
            self.status_label.setText(
                f"<b>Finished, but out of date:</b> the choices changed while {out.name} "
                "was training, so its results are not shown for them. Train again.")
            self.write_log(f"run {out} finished under earlier choices; not shown as current")
            return
        self.finished_metrics = metrics
        word = "Stopped" if info.get("cancelled") else "Finished"
        self.status_label.setText(
            f"{word}: validation accuracy {metrics['val_accuracy']:.3f} (best epoch "
            f"{metrics['best_epoch']}). Open Results.")
        self.progress.setValue(self.progress.maximum())
        self.state.set_run(out)
        self.training_finished.emit(metrics)

    def _failed(self, message: str) -> None:
        run = self.current_run_dir.name if self.current_run_dir is not None else "the run"
        self.state.set_run(None, outdated=f"{run} failed: {message.splitlines()[0]} "
                                          "No results to show.")
        self.status_label.setText("<b>Training failed.</b> " + message.splitlines()[0])
        self.write_log("ERROR: " + message)

    def blocker(self) -> str | None:
        if self.running:
            return "Training is running: wait for it to finish or press Stop."
        if self.state.run_dir is None:
            if self.state.outdated:  # epochs may well have finished, for other choices
                return ("The last run no longer matches your choices (see above): press "
                        "Start to train with the current ones.")
            return "Press Start and let at least one epoch finish."
        return None


def _dataset_root(run_dir: Path) -> str | None:
    try:
        return str(read_config(run_dir)["dataset"]["root"])
    except (OSError, ValueError, KeyError, TypeError, UserError):
        return None
