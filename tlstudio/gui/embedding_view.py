"""The Results step's Map tab: the run's images as its model sees them (core
``studies/embedding_map``, also ``tlstudio map``), drawn on request off the GUI thread.

Colour: the true class. Shape: the part (circle training, square validation, triangle test).
A red ring: the model gets the image wrong. A line: two near-duplicate images (red when they
sit in different parts: leakage). A click on a point opens the image with its heatmap.
"""

from __future__ import annotations

from types import SimpleNamespace

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..core.words import count
from .workers import LatestTask

SYMBOLS = {"train": "o", "val": "s", "test": "t"}
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207), (214, 39, 40)]


class EmbeddingMapView(QWidget):
    point_clicked = Signal(object)  # a row with path, label, predicted, confidence

    def __init__(self, parent=None):
        super().__init__(parent)
        self.run_dir = None
        self.result: dict | None = None
        self._task = LatestTask(self)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        self.draw_button = QPushButton("Draw the map")
        self.draw_button.setToolTip(
            "Place every image of this run by how alike its model finds them (t-SNE of its "
            "features): mistakes, odd labels and near-duplicates show at a glance. Takes "
            "seconds to a minute; `tlstudio map --run RUN` gives the same points.")
        self.draw_button.clicked.connect(self.draw)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        top.addWidget(self.draw_button)
        top.addStretch(1)
        layout.addLayout(top)
        layout.addWidget(self.status)  # under the button: the plot keeps the tab's width
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.addLegend(offset=(5, 5))
        layout.addWidget(self.plot, 1)

    def set_run(self, run_dir) -> None:
        """Another run: what was drawn belongs to the old one."""
        self._task.cancel()
        self.run_dir, self.result = run_dir, None
        self.plot.clear()
        self.draw_button.setEnabled(run_dir is not None)
        self.status.setText("")

    def draw(self) -> None:
        from ..core.engine.events import StageProgress
        from ..core.studies.embedding_map import embedding_map

        run_dir = self.run_dir
        if run_dir is None:
            return
        self.draw_button.setEnabled(False)
        self.status.setText("Placing the images …")

        def work(token, progress):
            def emit(event) -> None:
                token.check()
                if isinstance(event, StageProgress):
                    progress(event.done, event.total)

            return embedding_map(run_dir, emit=emit)

        def failed(message: str) -> None:
            self.draw_button.setEnabled(True)
            self.status.setText(f"No map: {message}")

        self._task.start(work, on_done=self.show_map, on_error=failed,
                         on_progress=lambda d, t: self.status.setText(
                             f"Placing the images: {d} of {t} …"))

    def show_map(self, result: dict) -> None:
        self.result = result
        self.draw_button.setEnabled(True)
        plot = self.plot
        plot.clear()
        points = result["points"]
        where = {p["path"]: p for p in points}
        for d in result["duplicates"]:
            a, b = where[d["a"]], where[d["b"]]
            pen = pg.mkPen((214, 39, 40) if d["leak"] else (120, 120, 120), width=2)
            plot.plot([a["x"], b["x"]], [a["y"], b["y"]], pen=pen)
        labels = sorted({p["label"] for p in points})
        for k, label in enumerate(labels):
            mine = [p for p in points if p["label"] == label]
            colour = PALETTE[k % len(PALETTE)]
            spots = [{"pos": (p["x"], p["y"]), "data": p, "symbol": SYMBOLS[p["part"]],
                      "size": 11 if p["correct"] else 14,
                      "pen": pg.mkPen("w", width=1) if p["correct"]
                      else pg.mkPen((214, 39, 40), width=3),
                      "brush": pg.mkBrush(*colour, 200)} for p in mine]
            scatter = pg.ScatterPlotItem(spots=spots, name=label, hoverable=True,
                                         tip=lambda x, y, data: (
                                             f"{data['path']}\ntrue: {data['label']} · called: "
                                             f"{data['predicted']} ({data['part']})"))
            scatter.sigClicked.connect(self._clicked)
            plot.addItem(scatter)
        wrong = sum(not p["correct"] for p in points)
        leaks = sum(d["leak"] for d in result["duplicates"])
        text = (f"{len(points)} images · {wrong} the model gets wrong (red ring) · "
                "○ training ▢ validation △ test")
        if result["duplicates"]:
            text += (f" · {count(len(result['duplicates']), 'near-duplicate pair')} (lines)"
                     + (f", <b>{leaks} split across parts: leakage, the held-out numbers "
                        "are optimistic</b>" if leaks else ""))
        self.status.setText(text + ". Click a point to see the image.")

    def _clicked(self, _item, spots, *_args) -> None:
        if not spots:
            return
        p = spots[0].data()
        self.point_clicked.emit(SimpleNamespace(
            path=p["path"], label=p["label"], predicted=p["predicted"],
            confidence=float("nan")))
