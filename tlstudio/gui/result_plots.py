"""The Results step's plots: the clickable confusion matrix, and the ROC, precision-recall,
calibration and subgroup tabs of one part's metrics."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem, QTabWidget

from ..core.evaluation.uncertainty import format_ci
from .widgets import PlotNote


class ConfusionMatrixPlot(pg.PlotWidget):
    """Heatmap with counts; rows are the true class, columns the predicted one. A click on a
    cell says which (true, predicted) pair it is."""

    cell_clicked = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent, background="w", title="Confusion matrix")
        self.scene().sigMouseClicked.connect(self._clicked)
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

    def cell_at(self, scene_pos) -> tuple[int, int] | None:
        point = self.getPlotItem().vb.mapSceneToView(scene_pos)
        true, pred = round(point.y()), round(point.x())
        n = len(self.matrix)
        return (true, pred) if 0 <= true < n and 0 <= pred < n else None

    def cell_centre(self, true: int, pred: int):
        """Where a cell is on the widget (for a click)."""
        from PySide6.QtCore import QPointF

        scene = self.getPlotItem().vb.mapViewToScene(QPointF(pred, true))
        return self.mapFromScene(scene)

    def _clicked(self, event) -> None:
        cell = self.cell_at(event.scenePos())
        if cell is not None:
            self.cell_clicked.emit(*cell)

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


def _curve_plot(title_text: str, x_label: str, y_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(background="w", title=title_text)
    plot.setLabel("bottom", x_label)
    plot.setLabel("left", y_label)
    plot.setXRange(0, 1)
    plot.setYRange(0, 1)
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    return plot


class ResultCurves(QTabWidget):
    """ROC, precision-recall, reliability and subgroups of the part shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.roc_plot = _curve_plot("ROC", "1 − specificity", "sensitivity")
        self.pr_plot = _curve_plot("Precision–recall", "recall (sensitivity)", "precision (PPV)")
        self.reliability_plot = _curve_plot("Reliability", "confidence", "accuracy")
        self.addTab(self.roc_plot, "ROC")
        self.addTab(self.pr_plot, "PR")
        self.addTab(self.reliability_plot, "Calibration")
        self.notes = {plot: PlotNote(plot) for plot in (self.roc_plot, self.pr_plot,
                                                        self.reliability_plot)}
        self.subgroup_table = QTableWidget(0, 0)
        self.subgroup_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.subgroup_table.setToolTip("The same numbers for each value of a CSV column or a "
                                       "DICOM attribute: a group the model fails on shows here")
        self.addTab(self.subgroup_table, "Subgroups")

    def reset(self) -> None:
        """Empty plots and table (the tabs stay)."""
        for plot in (self.roc_plot, self.pr_plot, self.reliability_plot):
            plot.clear()
            self.notes[plot].show_when(True, "no data yet")
        self.subgroup_table.clear()
        self.subgroup_table.setRowCount(0)

    def show_block(self, block: dict, classes: list[str]) -> None:
        """Curves, reliability and subgroups of one part's metrics block."""
        self.reset()
        pen = pg.mkPen((31, 119, 180), width=2)
        diagonal = pg.mkPen((150, 150, 150), style=Qt.PenStyle.DashLine)
        curves = block.get("curves")
        if curves:
            roc = curves["roc"]
            self.roc_plot.plot([0, 1], [0, 1], pen=diagonal)
            self.roc_plot.plot(roc["fpr"], roc["tpr"], pen=pen)
            if block.get("threshold") is not None:
                spec, sens = block["specificity"], block["sensitivity"]
                if spec is not None and sens is not None:
                    self.roc_plot.plot([1 - spec], [sens], pen=None, symbol="o",
                                       symbolBrush=(214, 39, 40), symbolSize=9)
            pr = curves["pr"]
            self.pr_plot.plot(pr["recall"], pr["precision"], pen=pen)
        for plot in (self.roc_plot, self.pr_plot):
            self.notes[plot].show_when(not curves, "for two classes only: see the confusion "
                                                   "matrix and the per-class table")
        only = "" if curves else " (two classes only)"
        self.roc_plot.setTitle(f"ROC{only}")
        self.pr_plot.setTitle(f"Precision–recall{only}")
        bins = block.get("reliability") or []
        self.reliability_plot.plot([0, 1], [0, 1], pen=diagonal)
        self.notes[self.reliability_plot].show_when(not bins, "no data yet")
        if bins:
            self.reliability_plot.plot([b["confidence"] for b in bins],
                                       [b["accuracy"] for b in bins], pen=pen, symbol="o",
                                       symbolSize=6, symbolBrush=(31, 119, 180))
        self._fill_subgroups(block.get("subgroups") or {}, classes)

    def _fill_subgroups(self, subgroups: dict, classes: list[str]) -> None:
        table = self.subgroup_table
        table.clear()
        rows = [(f"{name} = {value}", row) for name, values in subgroups.items()
                for value, row in values.items()]
        two = len(classes) == 2
        headers = ["images", "accuracy"] + (["sensitivity", "specificity"] if two else [])
        table.setColumnCount(len(headers))
        table.setHorizontalHeaderLabels(headers)
        table.setRowCount(max(len(rows), 1))
        if not rows:
            table.setVerticalHeaderLabels([""])
            table.setItem(0, 0, QTableWidgetItem("No subgroups: add columns (site, scanner, "
                                                 "sex …) to your CSV, or use DICOM files"))
            table.setSpan(0, 0, 1, len(headers))
            return
        table.setVerticalHeaderLabels([label for label, _ in rows])
        for r, (_, row) in enumerate(rows):
            cells = [str(row["n"]), format_ci(row["accuracy"], row["accuracy_ci"])]
            if two:
                cells += [format_ci(row.get("sensitivity"), row.get("sensitivity_ci")),
                          format_ci(row.get("specificity"), row.get("specificity_ci"))]
            for c, text in enumerate(cells):
                table.setItem(r, c, QTableWidgetItem(text.replace(" (95 % CI ", " (")))
        table.resizeColumnsToContents()
