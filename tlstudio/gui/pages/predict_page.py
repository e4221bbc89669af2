"""Step 7, Predict: drop new images or folders, read the top classes, preview each."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ...core.data.images import ImageReadError
from ...core.evaluation.ood import QUANTILE
from ...core.runs.predict import Predictor
from ..widgets import DropZone, count, thumbnail, title
from ..workers import LatestTask
from .base import Page


class PredictPage(Page):
    title = "Predict"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.predictor: Predictor | None = None
        self.predictor_for = None
        self.results: list = []
        self.busy = False
        self._task = LatestTask(self)
        layout = QVBoxLayout(self)
        layout.addWidget(title("Predict new images"))
        row = QHBoxLayout()
        self.drop_zone = DropZone("Drop images or folders here")
        self.drop_zone.dropped.connect(self.predict_paths)
        row.addWidget(self.drop_zone, 1)
        buttons = QVBoxLayout()
        self.files_button = QPushButton("Add images…")
        self.files_button.clicked.connect(self._browse_files)
        self.folder_button = QPushButton("Add folder…")
        self.folder_button.clicked.connect(self._browse_folder)
        buttons.addWidget(self.files_button)
        buttons.addWidget(self.folder_button)
        row.addLayout(buttons)
        layout.addLayout(row)
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.heat_check = QCheckBox("Show where the model looked (Grad-CAM heatmap)")
        self.heat_check.toggled.connect(lambda _on: self._preview_selected())
        layout.addWidget(self.heat_check)
        self._heat_task = LatestTask(self)
        self.heat_image = None  # the last heatmap shown (QImage)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        self.table = QTableWidget(0, 5)
        # "called" is the run's answer (its threshold applied), which with two classes can
        # differ from the larger probability: never left for the user to infer
        self.table.setHorizontalHeaderLabels(["image", "called", "1st", "2nd", "3rd"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.itemSelectionChanged.connect(self._preview_selected)
        splitter.addWidget(self.table)
        preview = QWidget()
        preview_layout = QVBoxLayout(preview)
        self.preview = QLabel("Select a row to preview it.")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(256, 256)
        self.preview_text = QLabel("")
        self.preview_text.setWordWrap(True)
        preview_layout.addWidget(self.preview, 1)
        preview_layout.addWidget(self.preview_text)
        splitter.addWidget(preview)
        splitter.setSizes([560, 320])
        layout.addWidget(splitter, 1)
        state.run_changed.connect(self._run_changed)

    def _run_changed(self) -> None:
        """Answers of a model that is no longer current are taken off the screen, and a
        prediction still running for it is dropped."""
        self._task.cancel()
        self._heat_task.cancel()
        self.heat_image = None
        self.busy = False
        self.predictor, self.predictor_for = None, None
        self.results = []
        self.table.setRowCount(0)
        self.preview.clear()
        self.preview.setText("Select a row to preview it.")
        self.preview_text.setText("")
        self.status_label.setText(
            "<b>Out of date.</b> " + self.state.outdated if self.state.outdated
            and self.state.run_dir is None else "")

    def accepts_drops(self) -> bool:
        return True

    def drop_paths(self, paths) -> None:
        self.predict_paths(paths)

    def _browse_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Images", str(Path.home()))
        if files:
            self.predict_paths([Path(f) for f in files])

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of images", str(Path.home()))
        if folder:
            self.predict_paths([Path(folder)])

    def predict_paths(self, paths: list[Path]) -> None:
        run_dir = self.state.run_dir
        if run_dir is None:
            self.status_label.setText(
                "<b>Out of date.</b> " + self.state.outdated if self.state.outdated
                else "Train a model first (step Train).")
            return
        self.busy = True
        self.status_label.setText(f"Predicting {count(len(paths), 'item')}…")

        cached = self.predictor if self.predictor_for == run_dir else None

        def work(token):  # the loaded model comes back with the results, by signal
            predictor = cached or Predictor.from_run(run_dir)
            return predictor, run_dir, predictor.predict(list(paths), should_stop=token.check)

        # the newest request wins: an older one stops between batches, its rows are dropped
        self._task.start(work, on_done=self._show, on_error=self._failed)

    def _failed(self, message: str) -> None:
        self.busy = False
        self.status_label.setText(f"Prediction failed: {message}")

    def _show(self, outcome) -> None:
        self.predictor, self.predictor_for, results = outcome
        self.busy = False
        start = len(self.results)
        self.results.extend(results)
        self.table.setRowCount(len(self.results))
        shown = min(3, len(self.predictor.classes))
        for column in (3, 4):
            self.table.setColumnHidden(column, column - 1 > shown)
        for r, result in enumerate(results, start):
            name = Path(result.path).name + (f" #{result.frame}" if result.frame is not None
                                             else "")
            self.table.setItem(r, 0, QTableWidgetItem(name))
            if result.error:
                self.table.setItem(r, 1, QTableWidgetItem(f"unreadable: {result.error}"))
                continue
            called = QTableWidgetItem(result.label)
            font = called.font()
            font.setBold(True)
            called.setFont(font)
            if result.ood:
                called.setText(f"⚠ {result.label}?")
                called.setBackground(QColor("#f6d5b3"))
                called.setToolTip(unfamiliar_text(result, self.predictor))
            self.table.setItem(r, 1, called)
            for c, (label, p) in enumerate(result.top(3), 2):
                self.table.setItem(r, c, QTableWidgetItem(f"{label}  {p:.1%}"))
        errors = sum(1 for r in results if r.error)
        strange = sum(1 for r in results if r.ood)
        self.status_label.setText(  # the unreadable ones were not predicted
            f"{count(len(results) - errors, 'image')} predicted"
            + (f", {count(errors, 'file')} unreadable" if errors else "")
            + (f", <b>{strange} unlike anything this model was trained on (⚠): do not trust "
               "their answers</b>" if strange else "") + ". "
            + decision_text(self.predictor))
        if results:
            self.table.selectRow(start)

    def _preview_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        result = self.results[rows[0].row()]
        try:
            window = self.predictor.run.preprocessing.window if self.predictor else "file"
            self.preview.setPixmap(QPixmap.fromImage(
                thumbnail(result.path, 320, window, result.frame)))
        except ImageReadError as exc:
            self.preview.setText(str(exc))
        if self.heat_check.isChecked() and not result.error and self.predictor is not None:
            self._show_heatmap(result)
        if result.error:
            self.preview_text.setText(result.error)
        else:
            warning = (f"<b>⚠ {unfamiliar_text(result, self.predictor)}</b><br>"
                       if result.ood else "")
            self.preview_text.setText(
                warning + f"called <b>{result.label}</b><br>" + "<br>".join(
                    f"{label}: {p:.1%}" for label, p in result.top(len(result.probabilities))))

    def _show_heatmap(self, result) -> None:
        """The overlay replaces the preview when it arrives (computed off the GUI thread)."""
        from ..image_view import explain_one

        run_dir = self.predictor.run.dir
        self._heat_task.start(lambda _token: explain_one(run_dir, result.key, None),
                              on_done=lambda out: self._heat_ready(result, out),
                              on_error=lambda message: self.preview_text.setText(
                                  f"No heatmap: {message}"))

    def _heat_ready(self, result, out) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or self.results[rows[0].row()] is not result:
            return  # another row was chosen meanwhile
        _, heat, _, explanation = out
        self.heat_image = heat
        self.preview.setPixmap(QPixmap.fromImage(heat))
        self.preview.setToolTip(f"heatmap for '{self.predictor.classes[explanation.class_index]}'")


def decision_text(predictor) -> str:
    """How the run turns probabilities into a call, in words (chosen on validation)."""
    d = predictor.decision
    if d.threshold is not None:
        text = (f"'{d.positive}' is called when its probability is at least {d.threshold:.3f} "
                f"({d.rule}, chosen on validation)")
    else:
        text = "each image gets the class with the highest probability"
    return text + f"; probabilities are calibrated (temperature {d.temperature:.2f})."


def unfamiliar_text(result, predictor) -> str:
    """Why an answer carries the out-of-distribution warning, in words."""
    threshold = float(predictor.ood.threshold) if predictor and predictor.ood else float("nan")
    return (f"This image is unlike anything this model was trained on (distance "
            f"{result.ood_score:.2f}; {QUANTILE:.0%} of the validation images are below "
            f"{threshold:.2f}). Its answer is not to be trusted.")
