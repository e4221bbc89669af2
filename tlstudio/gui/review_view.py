"""The Label step's Review tab: labels that look wrong and near-duplicates, most suspicious
first (core ``studies.label_review``, also ``tlstudio review``), each kept, relabeled or
excluded. Decisions go into a label project in tlstudio's folder, never into the user's
folder or CSV; the corrected labels are a dataset the Data step opens.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.data.labels import LabelProject
from ..core.words import count
from .widgets import hint, thumbnail
from .workers import LatestTask

PREVIEW = 120
COLUMNS = ("what", "image", "label", "looks like", "score", "why")


class ReviewView(QWidget):
    decided = Signal(str)  # what was decided, for the status line
    use_labels = Signal(object)  # the corrected labels' CSV

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        self.labels_csv: Path | None = None  # the labels made on this step, when any
        self.index = None  # the dataset reviewed
        self.project: LabelProject | None = None
        self.rows: list = []
        self.reviewed: str | None = None  # "data" or "labels": what the list is about
        self._task = LatestTask(self)
        self._preview = LatestTask(self)

        layout = QVBoxLayout(self)
        layout.addWidget(hint(
            "Labels the model doubts, and images that appear twice (red: a leak across the "
            "split). Keep, relabel or exclude: remembered, and your files never change."))
        top = QHBoxLayout()
        top.addWidget(QLabel("Review:"))
        self.source = QComboBox()
        self.source.setSizeAdjustPolicy(  # a long dataset path must not widen the window
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.source.setMinimumContentsLength(12)
        top.addWidget(self.source, 1)
        self.find_button = QPushButton("Find suspicious labels")
        self.find_button.clicked.connect(self.find)
        top.addWidget(self.find_button)
        layout.addLayout(top)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        middle = QHBoxLayout()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(
            len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.itemSelectionChanged.connect(self._selected)
        middle.addWidget(self.table, 3)
        pictures = QVBoxLayout()
        self.picture = QLabel("")
        self.picture.setFixedSize(PREVIEW, PREVIEW)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.twin = QLabel("")
        self.twin.setFixedSize(PREVIEW, PREVIEW)
        self.twin.setAlignment(Qt.AlignmentFlag.AlignCenter)
        pictures.addWidget(self.picture)
        pictures.addWidget(self.twin)
        pictures.addStretch(1)
        middle.addLayout(pictures, 1)
        layout.addLayout(middle, 1)

        actions = QHBoxLayout()
        self.keep_button = QPushButton("Keep")
        self.keep_button.setToolTip("The label is right: keep it (remembered)")
        self.keep_button.clicked.connect(self.keep)
        self.relabel_combo = QComboBox()
        self.relabel_button = QPushButton("Relabel as")
        self.relabel_button.clicked.connect(self.relabel)
        self.exclude_button = QPushButton("Exclude")
        self.exclude_button.setToolTip("Leave this image out of training (remembered)")
        self.exclude_button.clicked.connect(self.exclude)
        self.use_button = QPushButton("Train on corrected labels →")
        self.use_button.clicked.connect(self._use)
        for w in (self.keep_button, self.relabel_button, self.relabel_combo,
                  self.exclude_button):
            actions.addWidget(w)
        actions.addStretch(1)
        actions.addWidget(self.use_button)
        layout.addLayout(actions)
        self._enable()
        state.dataset_changed.connect(self._dataset_changed)

    def _dataset_changed(self) -> None:
        """A list about a dataset the Data step no longer holds goes (its decisions stay
        remembered); a review running for it is dropped."""
        if self.index is not None and self.reviewed == "data" \
                and self.index is not self.state.index:
            self._task.cancel()
            self.index, self.rows = None, []
            self.table.setRowCount(0)
            self.find_button.setEnabled(True)
            self.status.setText("The dataset on the Data step changed: find again.")
            self._enable()

    # --- what to review -----------------------------------------------------------------
    def on_enter(self) -> None:
        current = self.source.currentData()
        self.source.clear()
        if self.labels_csv is not None:
            self.source.addItem("the labels made on this step", "labels")
        if self.state.index is not None:
            self.source.addItem(f"the dataset on the Data step ({self.state.index.root})",
                                "data")
        found = self.source.findData(current)
        if found >= 0:
            self.source.setCurrentIndex(found)
        self.find_button.setEnabled(self.source.count() > 0)
        if not self.source.count():
            self.status.setText("Open a dataset on the Data step, or label images on the "
                                "Label tab, to review its labels.")

    def find(self) -> None:
        which = self.source.currentData()
        self.reviewed = which
        labels_csv, index = self.labels_csv, self.state.index
        backbone, window = self.state.spec.name, self.state.window
        self.index, self.rows = None, []  # a new review: the old list goes
        self.table.setRowCount(0)
        self.status.setText("Looking at every label (features once, then seconds)…")
        self.find_button.setEnabled(False)

        def work(token, progress):
            from ..core.data.dataset import scan
            from ..core.engine.events import StageProgress
            from ..core.studies.label_review import review_dataset

            def emit(event):
                if isinstance(event, StageProgress):
                    progress(event.done, event.total)
            target = scan(labels_csv) if which == "labels" else index
            return target, review_dataset(target, backbone, "auto", window, emit=emit)

        self._task.start(work, self._found, on_error=self._failed,
                         on_progress=lambda d, t: self.status.setText(
                             f"Reading the images' features: {d}/{t}"))

    def _failed(self, message: str) -> None:
        self.find_button.setEnabled(True)
        self.status.setText(f"Cannot review: {message}")

    def _found(self, result) -> None:
        self.index, self.rows = result
        self.find_button.setEnabled(True)
        self.project = LabelProject.find_for_dataset(self.index.root)
        self.relabel_combo.clear()
        self.relabel_combo.addItems(self.index.classes)
        labels = sum(r.kind == "label" for r in self.rows)
        self.status.setText(
            f"{count(labels, 'label')} the model doubts and "
            f"{count(len(self.rows) - labels, 'near-duplicate pair')} among "
            f"{count(len(self.index.items), 'image')}, most suspicious "
            "first." if self.rows else "Nothing suspicious found.")
        self._fill()

    def _fill(self) -> None:
        self.table.setRowCount(len(self.rows))
        for r, s in enumerate(self.rows):
            values = ("label?" if s.kind == "label" else "duplicate", Path(s.path).name,
                      s.label, s.suggested_label, f"{s.score:.2f}", s.note)
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setToolTip(f"{s.path}\n{s.note}")
                if s.kind == "duplicate" and "leak" in s.note:
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(r, c, item)
        if self.rows:
            self.table.selectRow(0)
        self._enable()

    def _enable(self) -> None:
        chosen = self._chosen() is not None
        for w in (self.keep_button, self.relabel_button, self.relabel_combo,
                  self.exclude_button):
            w.setEnabled(chosen)
        self.use_button.setEnabled(self.project is not None and self.project.source
                                   is not None and self.project.ready() is None)

    def _chosen(self):
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() \
            else []
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def _selected(self) -> None:
        s = self._chosen()
        self._enable()
        if s is None:
            return
        window = self.state.window
        found = self.relabel_combo.findText(s.suggested_label)
        if found >= 0:
            self.relabel_combo.setCurrentIndex(found)

        def work(token):
            return (s, thumbnail(s.path, PREVIEW, window),
                    thumbnail(s.other, PREVIEW, window) if s.other else None)

        self._preview.start(work, self._show)

    def _show(self, result) -> None:
        s, image, twin = result
        if s is not self._chosen():
            return
        self.picture.setPixmap(QPixmap.fromImage(image))
        if twin is not None:
            self.twin.setPixmap(QPixmap.fromImage(twin))
        else:
            self.twin.clear()

    # --- decisions ----------------------------------------------------------------------
    def _decide(self, what: str) -> None:
        s = self._chosen()
        if s is None or self.index is None:
            return
        if self.project is None:
            self.project = LabelProject.for_dataset(self.index)
        if what == "keep":
            self.project.keep(s.path)
            said = f"{Path(s.path).name} kept as '{s.label}'"
        elif what == "exclude":
            self.project.exclude(s.path)
            said = f"{Path(s.path).name} excluded from training"
        else:
            label = self.relabel_combo.currentText()
            self.project.set_label(s.path, label)
            self.project.keep(s.path)
            said = f"{Path(s.path).name} relabeled '{label}'"
        row = self.rows.index(s)
        del self.rows[row]
        self.table.removeRow(row)
        self._enable()
        self.decided.emit(f"{said} (remembered in {self.project.dir})")

    def keep(self) -> None:
        self._decide("keep")

    def exclude(self) -> None:
        self._decide("exclude")

    def relabel(self) -> None:
        self._decide("relabel")

    def _use(self) -> None:
        if self.project is not None:
            self.use_labels.emit(self.project.csv_path)
