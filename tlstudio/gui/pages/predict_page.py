"""Step 7, Predict: drop new images or folders, read the top classes, preview each."""

from __future__ import annotations

import html
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
from ...core.runs import prediction_table as table
from ...core.runs.predict import Predictor
from ...core.words import count
from ..widgets import DropZone, thumbnail, title
from ..workers import LatestTask
from .base import Page


class PredictPage(Page):
    title = "Predict"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.predictor: Predictor | None = None
        self.predictor_for = None
        self.results: list = []
        self.rows: list[dict] = []  # the results as `tlstudio predict --json` rows, grouped
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
        self.save_button = QPushButton("Save as CSV…")
        self.save_button.setToolTip("One line per image: the call, each class's probability, "
                                    "the unfamiliar-image warning and the patient group "
                                    "(the same table as `tlstudio predict --csv`)")
        self.save_button.clicked.connect(self._browse_save)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Take every prediction off the list")
        self.clear_button.clicked.connect(self.clear)
        for button in (self.files_button, self.folder_button, self.save_button,
                       self.clear_button):
            buttons.addWidget(button)
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
        self.table.cellDoubleClicked.connect(lambda row, _column: self.open_row(row))
        self.table.setToolTip("Double-click a row to see the image large beside its heatmap")
        self.dialog = None  # the last image opened large
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.table)
        self.groups_table = QTableWidget(0, 0)
        self.groups_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.groups_table.setToolTip("Per patient: how many of their images were called each "
                                     "class. Patients are shown by a pseudonym (the "
                                     "PatientID hashed with this installation's secret), "
                                     "never by the ID.")
        self.groups_table.hide()
        left.addWidget(self.groups_table)
        splitter.addWidget(left)
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
        self._update_buttons()

    def _run_changed(self) -> None:
        """Answers of a model that is no longer current are taken off the screen, and a
        prediction still running for it is dropped."""
        self._task.cancel()
        self._heat_task.cancel()
        self.heat_image = None
        self.busy = False
        self.predictor, self.predictor_for = None, None
        self._clear_rows()
        self.status_label.setText(
            "<b>Out of date.</b> " + self.state.outdated if self.state.outdated
            and self.state.run_dir is None else "")

    def _clear_rows(self) -> None:
        self.results, self.rows = [], []
        self.table.clearSpans()
        self.table.setRowCount(0)
        self._show_groups()
        self.preview.clear()
        self.preview.setText("Select a row to preview it.")
        self.preview_text.setText("")
        self._update_buttons()

    def clear(self) -> None:
        """Clear: every prediction off the list (a request still running is dropped)."""
        self._task.cancel()
        self._heat_task.cancel()
        self.busy = False
        self._clear_rows()
        self.status_label.setText("Cleared.")

    def _update_buttons(self) -> None:
        self.save_button.setEnabled(bool(self.rows))
        self.clear_button.setEnabled(bool(self.rows))

    def _browse_save(self) -> None:
        start = str(Path.home() / "predictions.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Save predictions", start, "CSV (*.csv)")
        if path:
            self.save_csv(Path(path))

    def save_csv(self, path: Path) -> None:
        try:
            written = table.write_csv(self.rows, path)
        except (OSError, table.TableError) as exc:
            self.status_label.setText(f"<b>Not saved:</b> {exc}")
            return
        self.status_label.setText(f"{count(len(self.rows), 'prediction')} saved to {written}.")

    def _show_groups(self) -> None:
        entries = table.by_group(self.rows)
        self.groups_table.setVisible(bool(entries))
        if not entries:
            self.groups_table.setRowCount(0)
            return
        classes = list(entries[0]["called"])
        headers = ["patient (hash)", "images", *(f"called {c}" for c in classes),
                   "unfamiliar ⚠", "unreadable"]
        self.groups_table.setColumnCount(len(headers))
        self.groups_table.setHorizontalHeaderLabels(headers)
        self.groups_table.setRowCount(len(entries))
        for r, entry in enumerate(entries):
            values = [entry["group"], entry["images"],
                      *(entry["called"].get(c, 0) for c in classes),
                      entry["unfamiliar"], entry["unreadable"]]
            for c, value in enumerate(values):
                self.groups_table.setItem(r, c, QTableWidgetItem(str(value)))
        self.groups_table.resizeColumnsToContents()

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
            results = predictor.predict(list(paths), should_stop=token.check)
            rows = [r.as_dict() for r in results]
            table.add_groups(rows)  # DICOM headers read here, off the GUI thread
            return predictor, run_dir, results, rows

        # the newest request wins: an older one stops between batches, its rows are dropped
        self._task.start(work, on_done=self._show, on_error=self._failed)

    def _failed(self, message: str) -> None:
        self.busy = False
        self.status_label.setText(f"Prediction failed: {message}")

    def _show(self, outcome) -> None:
        self.predictor, self.predictor_for, results, rows = outcome
        self.busy = False
        start = len(self.results)
        self.results.extend(results)
        self.rows.extend(rows)
        self._show_groups()
        self._update_buttons()
        self.table.setRowCount(len(self.results))
        shown = min(3, len(self.predictor.classes))
        for column in (3, 4):
            self.table.setColumnHidden(column, column - 1 > shown)
        for r, result in enumerate(results, start):
            name = Path(result.path).name + (f" #{result.frame}" if result.frame is not None
                                             else "")
            item = QTableWidgetItem(name)
            item.setToolTip(result.path)  # the whole path when the column cuts the name
            self.table.setItem(r, 0, item)
            if result.error:  # the reason across the answer columns, whole in its tooltip
                reason = QTableWidgetItem(f"unreadable: {result.error}")
                reason.setToolTip(result.error)
                self.table.setItem(r, 1, reason)
                self.table.setSpan(r, 1, 1, 4)
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
        # the counts describe the whole list (rows of earlier drops stay in it)
        errors = sum(1 for r in self.results if r.error)
        strange = sum(1 for r in self.results if r.ood)
        added = f" ({len(results)} just added)" if start and results else ""
        self.status_label.setText(  # the unreadable ones were not predicted
            f"{count(len(self.results) - errors, 'image')} predicted"
            + (f", {count(errors, 'file')} unreadable" if errors else "") + added
            + (f", <b>{strange} unlike anything this model was trained on (⚠): do not trust "
               "their answers</b>" if strange else "") + ". "
            + decision_text(self.predictor) + domain_text(self.predictor))
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

    def open_row(self, row: int) -> None:
        """Double-click: the image large; beside its heatmap when it was predicted."""
        from ..image_view import ImageDialog, LargeImageDialog, discard

        if not 0 <= row < len(self.results) or self.predictor is None:
            return
        result = self.results[row]
        window = self.predictor.run.preprocessing.window
        discard(self.dialog)
        if result.error:
            self.dialog = LargeImageDialog(result.key, window, caption=result.error,
                                           parent=self)
        else:
            self.dialog = ImageDialog(self.predictor.run.dir, result.key,
                                      self.predictor.classes, window,
                                      caption=f"called: {result.label}", parent=self)
        self.dialog.show()

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


def domain_text(predictor) -> str:
    """For a run made by `tlstudio adapt`: the domain it was adapted to, and how."""
    domain, how = predictor.domain
    if domain is None:
        return ""
    return (f" <b>This model was adapted to '{html.escape(domain)}'</b> "
            f"({html.escape(how)}): it is meant for images of that domain.")


def unfamiliar_text(result, predictor) -> str:
    """Why an answer carries the out-of-distribution warning, in words."""
    threshold = float(predictor.ood.threshold) if predictor and predictor.ood else float("nan")
    return (f"This image is unlike anything this model was trained on (distance "
            f"{result.ood_score:.2f}; {QUANTILE:.0%} of the validation images are below "
            f"{threshold:.2f}). Its answer is not to be trusted.")
