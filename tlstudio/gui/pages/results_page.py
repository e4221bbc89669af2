"""Step 5, Results: summary, confusion matrix, per-class table, misclassified images."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg
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
from ...core.runs.export import export_run
from ...core.runs.history import read_config, read_metrics, read_predictions
from ...errors import UserError
from ...pixels import parse_image_key
from ..widgets import thumbnail, title
from ..workers import LatestTask, run_task
from .base import Page

GALLERY_LIMIT = 60
log = logging.getLogger(__name__)


class ConfusionMatrixPlot(pg.PlotWidget):
    """Heatmap with counts; rows are the true class, columns the predicted one."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w", title="Confusion matrix")
        self.setMouseEnabled(False, False)
        self.hideButtons()
        self.getPlotItem().invertY(True)
        self.setLabel("left", "true class")
        self.setLabel("bottom", "predicted class")
        self.matrix = np.zeros((0, 0), dtype=int)

    def reset(self) -> None:
        """An empty plot: no counts and no class names left from another run."""
        self.clear()
        self.matrix = np.zeros((0, 0), dtype=int)
        for axis in ("bottom", "left"):
            self.getAxis(axis).setTicks(None)

    def show_matrix(self, matrix: list[list[int]], classes: list[str]) -> None:
        self.clear()
        self.matrix = np.asarray(matrix, dtype=int)
        n = len(classes)
        row_share = self.matrix / np.maximum(self.matrix.sum(axis=1, keepdims=True), 1)
        image = pg.ImageItem(row_share.T)  # ImageItem is indexed [x, y]
        image.setLookupTable(pg.colormap.get("CET-L12").getLookupTable(nPts=256))
        image.setLevels((0, 1))
        image.setRect(-0.5, -0.5, n, n)
        self.addItem(image)
        for true in range(n):
            for pred in range(n):
                dark = row_share[true, pred] > 0.55
                text = pg.TextItem(str(self.matrix[true, pred]), anchor=(0.5, 0.5),
                                   color=(255, 255, 255) if dark else (20, 20, 20))
                text.setPos(pred, true)
                self.addItem(text)
        ticks = [list(enumerate(classes))]
        self.getAxis("bottom").setTicks(ticks)
        self.getAxis("left").setTicks(ticks)
        self.setXRange(-0.5, n - 0.5, padding=0)
        self.setYRange(-0.5, n - 0.5, padding=0)


class ResultsPage(Page):
    title = "Results"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.shown_run = None
        self.metrics: dict = {}
        self._thumbnails = LatestTask(self)
        layout = QVBoxLayout(self)
        layout.addWidget(title("Results on the validation images"))
        self.summary_label = QLabel("No finished run yet.")
        self.summary_label.setObjectName("summary")
        self.summary_label.setWordWrap(True)
        layout.addWidget(self.summary_label)
        row = QHBoxLayout()
        self.matrix_plot = ConfusionMatrixPlot()
        self.matrix_plot.setMinimumSize(300, 260)
        row.addWidget(self.matrix_plot, 1)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["class", "precision", "recall", "F1", "images"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        row.addWidget(self.table, 1)
        layout.addLayout(row, 1)
        self.gallery_title = QLabel("Misclassified validation images")
        layout.addWidget(self.gallery_title)
        self.gallery = QListWidget()
        self.gallery.setViewMode(QListWidget.ViewMode.IconMode)
        self.gallery.setIconSize(QSize(96, 96))
        self.gallery.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.gallery.setMovement(QListWidget.Movement.Static)
        self.gallery.setGridSize(QSize(150, 150))
        self.gallery.setWordWrap(True)
        layout.addWidget(self.gallery, 1)
        export_row = QHBoxLayout()
        export_row.addWidget(QLabel("Export for use outside the app:"))
        self.format_combo = QComboBox()
        self.format_combo.addItems(["onnx", "torchscript"])
        export_row.addWidget(self.format_combo)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._choose_export_folder)
        export_row.addWidget(self.export_button)
        self.export_label = QLabel("")
        self.export_label.setWordWrap(True)
        export_row.addWidget(self.export_label, 1)
        layout.addLayout(export_row)
        state.run_changed.connect(self._run_changed)

    def _run_changed(self) -> None:
        """Nothing of a run that is no longer current stays on screen or usable."""
        self.shown_run = None
        self._thumbnails.cancel()  # thumbnails of the old run are dropped
        self.metrics = {}
        self.matrix_plot.reset()
        self.table.setRowCount(0)
        self.gallery.clear()
        self.gallery_title.setText("Misclassified validation images")
        self.export_label.setText("")
        self.export_button.setEnabled(False)
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
        self.show_run(run_dir)

    def show_run(self, run_dir) -> None:
        """Fill the page from the run's JSON and CSV (milliseconds: no model is built to show
        numbers); thumbnails of the mistakes are decoded off the GUI thread."""
        try:
            config, m = read_config(run_dir), read_metrics(run_dir)
            wrong = [row for row in read_predictions(run_dir) if not row.correct]
        except (OSError, ValueError, KeyError, UserError) as exc:
            self.summary_label.setText(f"<b>Cannot read this run.</b> {exc}")
            return
        self.metrics = m
        classes = config["classes"]
        self.gallery.clear()
        if not m:
            self.summary_label.setText("This run has no results yet: it did not finish. "
                                       "Resume it on the Train step.")
            return
        extra = f" · ROC AUC {m['roc_auc']:.3f}" if "roc_auc" in m else ""
        self.summary_label.setText(
            f"<b>Accuracy {m['val_accuracy']:.1%}</b> on {m['count']} validation images · "
            f"loss {m['val_loss']:.3f} · balanced accuracy {m['balanced_accuracy']:.1%} · "
            f"macro F1 {m['macro_f1']:.3f}{extra} · best epoch {m['best_epoch']} of "
            f"{m['epochs_run']} · {config['backbone']['display_name']}")
        self.matrix_plot.show_matrix(m["confusion_matrix"], classes)
        self.table.setRowCount(len(classes))
        right = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for r, name in enumerate(classes):
            row = m["per_class"][name]
            values = [name, f"{row['precision']:.3f}", f"{row['recall']:.3f}",
                      f"{row['f1']:.3f}", str(row["support"])]
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c:
                    item.setTextAlignment(right)
                self.table.setItem(r, c, item)
        wrong.sort(key=lambda row: -row.confidence)  # the most confident mistakes first
        self.gallery_title.setText(f"Misclassified validation images ({len(wrong)})")
        shown = wrong[:GALLERY_LIMIT]
        window = config.get("preprocessing", {}).get("window", "file")  # as the model saw

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

        # a newer run shown before these are ready drops them
        self._thumbnails.start(thumbnails, on_done=self._fill_gallery)

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
                f"{result.agreement:.1%} of {result.images} validation images "
                f"(max probability difference {result.max_abs_diff:.1e}). See MODEL_CARD.md.")

        def failed(message: str) -> None:
            if self.shown_run != run_dir:
                return
            self.export_button.setEnabled(True)
            self.export_label.setText(f"<b>Export refused:</b> {message.splitlines()[0]}")

        run_task(lambda: export_run(run_dir, fmt, out_dir), on_done=done, on_error=failed,
                 parent=self)

    def _fill_gallery(self, rows) -> None:
        for row, image in rows:
            icon = QIcon(QPixmap.fromImage(image)) if image is not None else QIcon()
            item = QListWidgetItem(
                icon, f"true: {row.label}\npredicted: {row.predicted}\n({row.confidence:.0%})")
            item.setToolTip(row.path)
            self.gallery.addItem(item)
