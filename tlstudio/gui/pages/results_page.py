"""Step 6, Results: the held-out test numbers with their intervals, the operating point, the
curves and calibration, a confusion matrix whose cells open their images, and the images
themselves with where the model looked."""

from __future__ import annotations

import html
import logging
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from ...core.data.images import ImageReadError
from ...core.evaluation.uncertainty import format_ci
from ...core.glossary import explain
from ...core.runs.adapt_output import ADAPTED_PART
from ...core.runs.adapt_output import describe as describe_adaptation
from ...core.runs.export import export_run
from ...core.runs.familiarity import held_out_flagged
from ...core.runs.history import read_config, read_metrics, read_predictions
from ...core.runs.report import write_report
from ...core.words import count
from ...errors import UserError
from ...pixels import parse_image_key
from ..adapt_dialog import AdaptDialog
from ..embedding_view import EmbeddingMapView
from ..image_view import ImageDialog, discard
from ..result_plots import ConfusionMatrixPlot, ResultCurves
from ..widgets import Pager, TermsLine, thumbnail, title
from ..workers import LatestTask, run_task
from .base import Page

GALLERY_PAGE = 60  # a page; Previous/Next reach every image
log = logging.getLogger(__name__)


PARTS = {ADAPTED_PART: "New domain (labeled)", "test": "Held-out test",
         "validation": "Validation"}
ROWS = {ADAPTED_PART: ADAPTED_PART, "test": "test", "validation": "val"}


class ResultsPage(Page):
    title = "Results"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.shown_run = None
        self.metrics: dict = {}
        self.part = "test"
        self.rows: list = []  # the shown part's predictions (PredictionRow)
        self.gallery_rows: list = []  # what the gallery lists, in its order
        self._gallery_start = 0  # the first row of the page shown
        self.cell: tuple[int, int] | None = None  # the confusion-matrix cell shown, if any
        self.classes: list[str] = []
        self.window = "file"
        self._thumbnails = LatestTask(self)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.title_label = title("Results")
        top.addWidget(self.title_label, 1)
        top.addWidget(QLabel("Show:"))
        self.part_combo = QComboBox()
        self.part_combo.setToolTip("Held-out test: images no choice looked at (the numbers to "
                                   "report). Validation: the images that chose the epoch, "
                                   "threshold and temperature (optimistic).")
        self.part_combo.currentIndexChanged.connect(self._part_changed)
        top.addWidget(self.part_combo)
        layout.addLayout(top)
        self.summary_label = QLabel("No finished run yet.")
        self.summary_label.setObjectName("summary")
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary_label)
        layout.addWidget(TermsLine([
            ("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"),
            ("ROC AUC", "roc_auc"), ("sensitivity", "sensitivity"),
            ("specificity", "specificity"), ("PPV", "ppv"), ("NPV", "npv"), ("F1", "f1"),
            ("calibration", "calibration"), ("95 % CI", "interval")]))
        row = QHBoxLayout()
        self.matrix_plot = ConfusionMatrixPlot()
        self.matrix_plot.setMinimumSize(200, 200)
        self.matrix_plot.setToolTip("Click a cell to see its images below")
        self.matrix_plot.cell_clicked.connect(lambda true, pred: self.show_cell((true, pred)))
        row.addWidget(self.matrix_plot, 2)
        # one column per class, one row per measure: a value and its interval fit a cell
        self.table = QTableWidget(0, 0)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setWordWrap(True)
        row.addWidget(self.table, 4)  # wide enough for a value and its interval
        self.curves = ResultCurves()
        self.curves.setMinimumWidth(200)
        self.map_view = EmbeddingMapView()
        self.map_view.point_clicked.connect(self.open_image)
        self.curves.addTab(self.map_view, "Map")
        row.addWidget(self.curves, 3)
        layout.addLayout(row, 1)
        gallery_head = QHBoxLayout()
        self.gallery_title = QLabel("Misclassified images")
        gallery_head.addWidget(self.gallery_title, 1)
        self.all_button = QPushButton("Mistakes first")
        self.all_button.setToolTip("Every image of this part, the mistakes first")
        self.all_button.clicked.connect(lambda: self.show_cell(None))
        gallery_head.addWidget(self.all_button)
        gallery_head.addWidget(QLabel("Sort:"))
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(["most confident first", "least confident first"])
        self.sort_combo.currentIndexChanged.connect(lambda _i: self._fill_gallery_rows())
        gallery_head.addWidget(self.sort_combo)
        layout.addLayout(gallery_head)
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setGridSize(QSize(150, 150))
        self.gallery.setWordWrap(True)
        self.gallery.setToolTip("Double-click an image to enlarge it with its heatmap")
        self.gallery.itemActivated.connect(self._open_item)
        layout.addWidget(self.gallery, 1)
        self.gallery_pager = Pager(GALLERY_PAGE)
        self.gallery_pager.changed.connect(self._show_gallery_page)
        layout.addWidget(self.gallery_pager)
        export_row = QHBoxLayout()
        export_row.addWidget(QLabel("Export:"))
        self.format_combo = QComboBox()
        self.format_combo.addItems(["onnx", "torchscript"])
        export_row.addWidget(self.format_combo)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export_folder)
        export_row.addWidget(self.export_button)
        self.report_button = QPushButton("Write report")
        self.report_button.setToolTip("One self-contained HTML file in the run's folder: data, "
                                      "settings, curves, test metrics with intervals, ROC, "
                                      "calibration, confusion matrix, heatmaps, model card")
        self.report_button.clicked.connect(self.write_report)
        export_row.addWidget(self.report_button)
        self.adapt_button = QPushButton("Adapt to new images…")
        self.adapt_button.setToolTip(
            "Carry this model to another scanner, site or camera with that domain's unlabeled "
            "images: writes a new run, this one stays as it is (tlstudio adapt).")
        self.adapt_button.clicked.connect(self.open_adapt_dialog)
        export_row.addWidget(self.adapt_button)
        self.export_label = QLabel("")
        self.export_label.setWordWrap(True)
        self.export_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.export_label.setOpenExternalLinks(True)
        export_row.addWidget(self.export_label, 1)
        layout.addLayout(export_row)
        self.dialog: ImageDialog | None = None
        self.adapt_dialog: AdaptDialog | None = None
        state.run_changed.connect(self._run_changed)

    def _run_changed(self) -> None:
        """Nothing of a run that is no longer current stays on screen or usable."""
        self.shown_run = None
        self._thumbnails.cancel()  # thumbnails of the old run are dropped
        self.metrics = {}
        self.rows, self.gallery_rows, self.cell, self.classes = [], [], None, []
        self.matrix_plot.reset()
        self.curves.reset()
        self.map_view.set_run(None)
        self.table.clear()
        self.table.setRowCount(0)
        self.table.setColumnCount(0)
        self.gallery.clear()
        self.gallery_pager.reset(0)  # no "images 1-60 of 92" of the old run
        self.part_combo.blockSignals(True)
        self.part_combo.clear()
        self.part_combo.blockSignals(False)
        self.title_label.setText("Results")
        self.gallery_title.setText("Misclassified images")
        self.export_label.setText("")
        self.export_button.setEnabled(False)
        self.report_button.setEnabled(False)
        self.adapt_button.setEnabled(False)
        if self.dialog is not None:
            self.dialog.close()
            self.dialog = None
        self.summary_label.setText(
            "<b>Out of date.</b> " + self.state.outdated if self.state.outdated
            else "No finished run yet.")
        if self.state.run_dir is not None and self.isVisible():
            self.on_enter()

    def on_enter(self) -> None:
        run_dir = self.state.run_dir
        if run_dir is None or run_dir == self.shown_run:
            return
        self.shown_run = run_dir
        self.export_button.setEnabled(True)
        self.report_button.setEnabled(True)
        self.adapt_button.setEnabled(True)
        self.map_view.set_run(run_dir)
        self.show_run(run_dir)

    def show_run(self, run_dir) -> None:
        """Fill the page from the run's JSON and CSV (milliseconds: no model is built to show
        numbers); thumbnails are decoded off the GUI thread."""
        try:
            config, m = read_config(run_dir), read_metrics(run_dir)
            predictions = read_predictions(run_dir)
        except (OSError, ValueError, KeyError, UserError) as exc:
            self.summary_label.setText(f"<b>Cannot read this run.</b> {exc}")
            return
        self.metrics, self.config, self.all_predictions = m, config, predictions
        self.classes = config["classes"]
        self.window = config.get("preprocessing", {}).get("window", "file")  # as the model saw
        self.gallery.clear()
        if not m:
            self.summary_label.setText("This run has no results yet: it did not finish. "
                                       "Resume it on the Train step.")
            return
        parts = [p for p in PARTS if m.get(p)] or ["validation"]
        self.part_combo.blockSignals(True)
        self.part_combo.clear()
        for part in parts:
            block = m.get(part) or m
            self.part_combo.addItem(f"{PARTS[part]} ({block['count']} images)", part)
        self.part_combo.blockSignals(False)
        self.show_part(parts[0])

    def _part_changed(self, index: int) -> None:
        part = self.part_combo.itemData(index)
        if part and self.metrics:
            self.show_part(part)

    def show_part(self, part: str) -> None:
        """Numbers, matrix, curves and images of one part (test or validation)."""
        m, config = self.metrics, self.config
        self.part = part
        block = m.get(part)
        legacy = block is None  # a run from before intervals: validation numbers only
        block = block or m
        self.part_combo.setCurrentIndex(max(self.part_combo.findData(part), 0))
        self.rows = [r for r in self.all_predictions if r.part == ROWS[part]]
        self.title_label.setText(f"Results on the {PARTS[part].lower()} images")
        self.summary_label.setText(self._summary(part, block, legacy, config))
        self.matrix_plot.show_matrix(block["confusion_matrix"], self.classes)
        self._fill_table(block, legacy)
        self.curves.show_block(block, self.classes)
        self.show_cell(None)

    def _summary(self, part: str, b: dict, legacy: bool, config: dict) -> str:
        m = self.metrics
        if legacy:
            return (f"<b>Accuracy {m['val_accuracy']:.1%}</b> on {m['count']} validation "
                    f"images (no intervals: trained with an older tlstudio) · best epoch "
                    f"{m['best_epoch']} of {m['epochs_run']}")
        where = {
            ADAPTED_PART: "labeled images of the new domain (the model adapted to them "
                          "without their labels)",
            "test": "held-out test images — never used to choose anything",
            "validation": "validation images — they chose the epoch, threshold and "
                          "temperature, so these numbers are optimistic"}[part]
        lines = [f"<b>Accuracy {format_ci(b['accuracy'], b['accuracy_ci'])}</b> on "
                 f"{b['n']} {where}.",
                 f"Balanced accuracy {format_ci(b['balanced_accuracy'], b['balanced_accuracy_ci'])}"
                 + (f" · ROC AUC {format_ci(b['roc_auc'], b['roc_auc_ci'], percent=False)}"
                    if b.get("roc_auc") is not None else "")]
        if b.get("threshold") is not None:
            lines.append(
                f"Operating point: <b>{b['positive_class']}</b> when its probability ≥ "
                f"{b['threshold']:.3f} ({b['threshold_rule']}, chosen on validation) → "
                f"sensitivity {format_ci(b['sensitivity'], b['sensitivity_ci'])}, "
                f"specificity {format_ci(b['specificity'], b['specificity_ci'])}")
        lines.append(f"Calibration error {b['ece']:.3f} after temperature "
                     f"{b['temperature']:.2f} ({b['ece_uncalibrated']:.3f} before) · "
                     f"95 % CI by bootstrap over "
                     f"{'patients' if b['intervals']['resampled'] == 'groups' else 'images'} · "
                     f"best epoch {m['best_epoch']} of {m['epochs_run']} · "
                     f"{config['backbone']['display_name']}")
        if m.get("cv"):
            cv = m["cv"]
            lines.insert(0, f"<b>Cross-validation over {cv['k']} folds</b> (every image tested "
                            f"once): accuracy {cv['accuracy_mean'] * 100:.1f} % ± "
                            f"{cv['accuracy_std'] * 100:.1f} (mean ± SD; folds: "
                            + ", ".join(f"{f['accuracy'] * 100:.0f} %" for f in cv["folds"])
                            + "). The model below is the final one.")
        if m.get("transfer"):
            t = m["transfer"]
            verdict = t["verdict"] if t["gain_ci"][1] >= 0 else f"<b>{t['verdict']}</b>"
            lines.append(f"Pretraining vs from scratch ({t['scratch_accuracy']:.1%} on the "
                         f"same images): {verdict}")
        if m.get("ood") and part != ADAPTED_PART:  # the adaptation says it for the new images
            share = held_out_flagged(m["ood"])
            lines.append(f"Out-of-distribution warning fitted: Predict marks images unlike the "
                         f"training images (it flagged {share:.1%} of these held-out ones).")
        if m.get("adaptation"):
            words = [html.escape(w) for w in describe_adaptation(m["adaptation"])]
            if part != ADAPTED_PART:
                words.append(f"<b>These {PARTS[part].lower()} numbers are the source run's, "
                             "measured on its own domain before adaptation.</b>")
            lines[:0] = words
        if part == "validation" and not m.get("test") and not m.get("cv"):
            lines.append("<b>No test part was held out</b>: set a held-out test share on the "
                         "Data step for numbers you can report.")
        return "<br>".join(lines)

    def _fill_table(self, block: dict, legacy: bool) -> None:
        """Columns: the classes (each against the rest); rows: the measures with intervals."""
        measures = ([("recall (sensitivity)", "recall"), ("precision (PPV)", "precision"),
                     ("F1", "f1")] if legacy else
                    [("sensitivity (recall)", "sensitivity"), ("specificity", "specificity"),
                     ("PPV (precision)", "ppv"), ("NPV", "npv"), ("F1", "f1")])
        self.table.clear()
        self.table.setColumnCount(len(self.classes))
        self.table.setRowCount(len(measures) + 1)
        self.table.setHorizontalHeaderLabels(self.classes)
        self.table.setVerticalHeaderLabels([label for label, _ in measures] + ["images"])
        words = {"recall": "sensitivity", "precision": "ppv"}
        for r, (_, key) in enumerate(measures):
            self.table.verticalHeaderItem(r).setToolTip(explain(words.get(key, key)))
        centre = Qt.AlignmentFlag.AlignCenter
        for c, name in enumerate(self.classes):
            row = block["per_class"][name]
            cells = [(f"{row[key]:.3f}" if legacy else
                      format_ci(row[key], row[f"{key}_ci"]).replace(" (95 % CI ", " (")
                      ) for _, key in measures] + [str(row["support"])]
            for r, value in enumerate(cells):
                item = QTableWidgetItem(value)
                item.setTextAlignment(centre)
                self.table.setItem(r, c, item)
        self.table.setToolTip("Each class against the others, with 95 % intervals")
        self.table.resizeRowsToContents()

    # --- images -------------------------------------------------------------------------
    def show_cell(self, cell: tuple[int, int] | None) -> None:
        """The gallery shows one confusion-matrix cell (true, predicted), or with None every
        image of the part, the mistakes first."""
        self.cell = cell
        self._fill_gallery_rows()

    def _fill_gallery_rows(self) -> None:
        if not self.classes:
            return
        rows = list(self.rows)
        descending = self.sort_combo.currentIndex() == 0
        rows.sort(key=lambda r: -r.confidence if descending else r.confidence)
        if self.cell is not None:
            true, pred = (self.classes[i] for i in self.cell)
            rows = [r for r in rows if r.label == true and r.predicted == pred]
            self.gallery_title.setText(f"True {true}, called {pred}: {count(len(rows), 'image')}")
        else:
            rows.sort(key=lambda r: r.correct)  # stable: mistakes first, each group sorted
            wrong = sum(1 for r in rows if not r.correct)
            self.gallery_title.setText(f"{len(rows)} images, misclassified first ({wrong}) "
                                       "· click a matrix cell to filter, double-click an "
                                       "image for its heatmap")
        self.gallery_rows = rows
        self.gallery_pager.reset(len(rows))
        self._show_gallery_page()

    def _show_gallery_page(self) -> None:
        self.gallery.clear()
        start, end = self.gallery_pager.page_range()
        shown = self.gallery_rows[start:end]
        self._gallery_start = start
        window = self.window

        def thumbnails(token):
            out = []
            for row in shown:
                token.check()
                try:
                    path, frame = parse_image_key(row.path)
                    out.append((row, thumbnail(path, 96, window, frame)))
                except ImageReadError as exc:  # moved or unreadable since training
                    log.info("no thumbnail for %s: %s", row.path, exc)
                    out.append((row, None))
            return out

        # a newer request (another cell, another run) drops these
        self._thumbnails.start(thumbnails, on_done=self._fill_gallery)

    def _fill_gallery(self, rows) -> None:
        self.gallery.clear()
        for k, (row, image) in enumerate(rows):
            icon = QIcon(QPixmap.fromImage(image)) if image is not None else QIcon()
            item = QListWidgetItem(
                icon, f"true: {row.label}\ncalled: {row.predicted}\n({row.confidence:.0%})")
            item.setToolTip(row.path)
            item.setData(Qt.ItemDataRole.UserRole, self._gallery_start + k)
            self.gallery.addItem(item)

    def _open_item(self, item: QListWidgetItem) -> None:
        row = self.gallery_rows[int(item.data(Qt.ItemDataRole.UserRole))]
        self.open_image(row)

    def open_image(self, row) -> None:
        """Enlarge one image beside its Grad-CAM heatmap (computed off the GUI thread)."""
        if self.shown_run is None:
            return
        discard(self.dialog)
        sure = "" if row.confidence != row.confidence else f" ({row.confidence:.1%})"
        self.dialog = ImageDialog(self.shown_run, row.path, self.classes, self.window,
                                  caption=f"true: {row.label} · called: {row.predicted}"
                                          + sure, parent=self)
        self.dialog.show()

    # --- report and export --------------------------------------------------------------
    def write_report(self) -> None:
        """The run's one-file report, written off the GUI thread (heatmaps take seconds)."""
        run_dir = self.shown_run
        if run_dir is None:
            return
        self.report_button.setEnabled(False)
        self.export_label.setText("Writing the report (with example heatmaps) …")

        def done(path) -> None:
            if self.shown_run != run_dir:
                return
            self.report_button.setEnabled(True)
            self.export_label.setText(f'Report written: <a href="{Path(path).as_uri()}">'
                                      f"{path}</a>")

        def failed(message: str) -> None:
            if self.shown_run != run_dir:
                return
            self.report_button.setEnabled(True)
            self.export_label.setText(f"<b>No report:</b> {message.splitlines()[0]}")

        run_task(lambda: write_report(run_dir), on_done=done, on_error=failed, parent=self)

    # --- adapt ----------------------------------------------------------------------------
    def open_adapt_dialog(self) -> None:
        if self.shown_run is None:
            return
        if self.adapt_dialog is not None and self.adapt_dialog.running:  # one at a time
            self.adapt_dialog.show()
            self.adapt_dialog.raise_()
            return
        self.adapt_dialog = AdaptDialog(Path(self.shown_run), self)
        self.adapt_dialog.adapted.connect(self._show_adapted)
        self.adapt_dialog.show()

    def _show_adapted(self, run_dir) -> None:
        self.state.set_run(Path(run_dir))

    # --- export -------------------------------------------------------------------------
    def _choose_export_folder(self) -> None:
        parent = QFileDialog.getExistingDirectory(self, "Export into folder", str(Path.home()))
        if parent and self.shown_run is not None:
            fmt = self.format_combo.currentText()
            self.export(Path(parent) / f"{Path(self.shown_run).name}-{fmt}", fmt)

    def export(self, out_dir: Path, fmt: str) -> None:
        """Export off the GUI thread; the label tells how the parity check went."""
        self.export_button.setEnabled(False)
        self.export_label.setText(f"Exporting to {out_dir} and checking it …")
        run_dir = self.shown_run

        def done(result) -> None:
            if self.shown_run != run_dir:  # the run changed meanwhile: not this page's news
                log.info("exported %s to %s after it stopped being current", run_dir,
                         result.out_dir)
                return
            self.export_button.setEnabled(True)
            self.export_label.setText(
                f"Exported {result.model_file} — same answer as the app on "
                f"{result.agreement:.1%} of {result.images} validation and test images "
                f"(max probability difference {result.max_abs_diff:.1e}). See MODEL_CARD.md.")

        def failed(message: str) -> None:
            if self.shown_run != run_dir:
                return
            self.export_button.setEnabled(True)
            self.export_label.setText(f"<b>Export refused:</b> {message.splitlines()[0]}")

        run_task(lambda: export_run(run_dir, fmt, out_dir), on_done=done, on_error=failed,
                 parent=self)
