"""The Runs view: every run in tlstudio's folder, kept across sessions.

Open any run's Results (the same Results panel as the wizard's, on a state of its own, so
looking at an old run never changes the current choices), compare two or more side by side
(metrics with intervals, ROC curves overlaid), delete one, or resume an unfinished one on
the Train step. Everything is read from the runs' JSON files, off nothing heavier.
"""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.evaluation.uncertainty import format_ci
from ..core.glossary import explain
from ..core.runs.catalog import COMPARED, comparison, delete_run, list_overviews
from ..errors import UserError
from .image_view import forget_models
from .pages.results_page import ResultsPage
from .state import StudioState
from .widgets import hint

COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14),
           (140, 86, 75)]


class ComparePanel(QWidget):
    """Two or more runs side by side: metrics with intervals, ROC curves overlaid."""

    def __init__(self, parent=None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        layout.addWidget(self.note)
        row = QHBoxLayout()
        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        row.addWidget(self.table, 3)
        self.roc = pg.PlotWidget(background="w", title="ROC (headline part)")
        self.roc.setLabel("bottom", "1 − specificity")
        self.roc.setLabel("left", "sensitivity")
        self.roc.addLegend(offset=(-10, 10))
        self.roc.setMouseEnabled(False, False)
        self.roc.setMinimumWidth(220)
        row.addWidget(self.roc, 2)
        layout.addLayout(row, 1)
        self.rows: list[dict] = []

    def show_runs(self, rows: list[dict]) -> None:
        self.rows = rows
        metrics = [name for name, _ in COMPARED] + ["ece"]
        self.table.clear()
        self.table.setRowCount(len(metrics) + 3)
        self.table.setColumnCount(len(rows))
        self.table.setHorizontalHeaderLabels([r["name"] for r in rows])
        labels = ["backbone, mode", "measured on", *[m.replace("_", " ") for m in metrics],
                  ""]
        self.table.setVerticalHeaderLabels(labels)
        for r, name in enumerate(metrics, 2):
            self.table.verticalHeaderItem(r).setToolTip(
                explain("calibration" if name == "ece" else name))
        for c, r in enumerate(rows):
            cells = [f"{r['backbone']}, {r['mode']}", f"{r['part']} (n={r['n']})"]
            for name, percent in COMPARED:
                cells.append(format_ci(r.get(name), r.get(f"{name}_ci"), percent=percent)
                             if r.get(name) is not None else "—")
            cells.append(f"{r['ece']:.3f}" if r.get("ece") is not None else "—")
            for k, text in enumerate(cells):
                self.table.setItem(k, c, QTableWidgetItem(text))
        self.table.setRowCount(len(labels) - 1)
        self.table.resizeRowsToContents()
        self.roc.clear()
        self.roc.plot([0, 1], [0, 1], pen=pg.mkPen((160, 160, 160), style=Qt.PenStyle.DashLine))
        for k, r in enumerate(rows):
            if r.get("curves"):
                roc = r["curves"]["roc"]
                self.roc.plot(roc["fpr"], roc["tpr"], name=f"{r['backbone']} {r['mode']} "
                              f"({r['name'][:15]})",
                              pen=pg.mkPen(COLOURS[k % len(COLOURS)], width=2))
        same = rows[0]["same_test_images"] if rows else True
        self.note.setText(
            "Headline numbers with 95 % intervals. " + (
                "All were measured on the same images." if same else
                "<b>These runs were not measured on the same images</b> (another dataset, "
                "split seed or test share): differences mix model and data."))


class RunsDialog(QDialog):
    """Non-modal: the wizard stays usable beside it."""

    resume_requested = Signal(Path)
    run_deleted = Signal(Path)

    def __init__(self, root: Path | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Runs")
        self.resize(1100, 720)
        self.root = root
        self.overviews: list = []
        layout = QVBoxLayout(self)
        layout.addWidget(hint("Every run tlstudio made, newest first. Select one to open its "
                              "results; select two or more to compare them."))
        splitter = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["created", "dataset", "backbone", "mode",
                                              "status", "headline"])
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        top_layout.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        self.open_button = QPushButton("Open results")
        self.compare_button = QPushButton("Compare")
        self.delete_button = QPushButton("Delete…")
        self.resume_button = QPushButton("Resume on the Train step")
        self.refresh_button = QPushButton("Refresh")
        self.open_button.clicked.connect(self.open_selected)
        self.compare_button.clicked.connect(self.compare_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.resume_button.clicked.connect(self._resume)
        self.refresh_button.clicked.connect(self.refresh)
        for b in (self.open_button, self.compare_button, self.delete_button,
                  self.resume_button, self.refresh_button):
            buttons.addWidget(b)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        buttons.addWidget(self.message, 1)
        top_layout.addLayout(buttons)
        splitter.addWidget(top)
        self.detail = QStackedWidget()
        self.results_state = StudioState()  # its own: an old run never becomes "current"
        self.results_state.setParent(self)
        self.results = ResultsPage(self.results_state)
        self.compare = ComparePanel()
        self.detail.addWidget(self.results)
        self.detail.addWidget(self.compare)
        splitter.addWidget(self.detail)
        splitter.setSizes([260, 460])
        layout.addWidget(splitter, 1)
        self.refresh()

    def refresh(self) -> None:
        self.overviews = list_overviews(self.root)
        self.table.setRowCount(len(self.overviews))
        for r, o in enumerate(self.overviews):
            s = o.summary
            cells = [s.created[:16].replace("T", " "), Path(o.dataset).name, s.backbone,
                     s.mode, f"{s.status} ({s.epochs_done}/{s.epochs})", o.headline]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(s.dir) if c == 0 else o.dataset if c == 1 else text)
                self.table.setItem(r, c, item)
        self._selection_changed()

    def selected(self) -> list:
        rows = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.overviews[r] for r in rows]

    def select_rows(self, rows: list[int]) -> None:
        self.table.clearSelection()
        mode = self.table.selectionMode()
        self.table.setSelectionMode(QTableWidget.SelectionMode.MultiSelection)
        for r in rows:
            self.table.selectRow(r)
        self.table.setSelectionMode(mode)

    def _selection_changed(self) -> None:
        chosen = self.selected()
        finished = [o for o in chosen if o.metrics]
        self.open_button.setEnabled(len(chosen) == 1 and bool(finished))
        self.compare_button.setEnabled(len(finished) >= 2)
        self.delete_button.setEnabled(len(chosen) == 1 and chosen[0].summary.status != "running")
        self.resume_button.setEnabled(len(chosen) == 1 and chosen[0].summary.resumable)
        if len(chosen) == 1 and finished:
            self.open_selected()
        elif len(finished) >= 2:
            self.compare_selected()

    def open_selected(self) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        self.detail.setCurrentWidget(self.results)
        self.results_state.set_run(chosen[0].dir)
        self.results.on_enter()

    def compare_selected(self) -> None:
        chosen = [o for o in self.selected() if o.metrics]
        if len(chosen) < 2:
            return
        try:
            rows = comparison([o.dir for o in chosen])
        except (OSError, ValueError, KeyError, UserError) as exc:
            self.message.setText(f"Cannot compare: {exc}")
            return
        self.compare.show_runs(rows)
        self.detail.setCurrentWidget(self.compare)

    def delete_selected(self, confirm: bool = True) -> None:
        chosen = self.selected()
        if len(chosen) != 1:
            return
        run = chosen[0].dir
        if confirm:
            answer = QMessageBox.question(
                self, "Delete run", f"Delete the run {run.name} and everything in its folder "
                "(weights, results, report)? This cannot be undone.",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                QMessageBox.StandardButton.No)
            if answer != QMessageBox.StandardButton.Yes:
                return
        try:
            delete_run(run)
        except (OSError, UserError) as exc:
            self.message.setText(f"Not deleted: {exc}")
            return
        if self.results_state.run_dir == run:
            self.results_state.set_run(None)
        forget_models()  # a model loaded for its heatmaps goes with it
        self.message.setText(f"Deleted {run.name}.")
        self.run_deleted.emit(run)
        self.refresh()

    def _resume(self) -> None:
        chosen = self.selected()
        if len(chosen) == 1 and chosen[0].summary.resumable:
            self.resume_requested.emit(chosen[0].dir)
