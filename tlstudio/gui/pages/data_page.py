"""Step 1, Data: choose a folder or CSV, see classes, thumbnails, problems and the split."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ...core.data.cache import ImageCache
from ...core.data.dataset import DatasetError, scan
from ...core.data.samples import sample_dataset
from ...core.data.split import make_split
from ..state import settings
from ..widgets import DropZone, hint, thumbnail, title
from ..workers import LatestTask, run_task
from .base import Page

THUMBS_PER_CLASS = 48
THUMB_CHUNK = 12


class DataPage(Page):
    title = "Data"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.scanning = False
        self.error: str | None = None
        self._scan = LatestTask(self)
        self._thumb_generation = 0

        layout = QVBoxLayout(self)
        layout.addWidget(title("Your images"))
        layout.addWidget(hint(
            "A folder with one sub-folder per class (images anywhere inside it), or a CSV with "
            "columns path,label[,group]. Nothing is ever written into your folder."))
        row = QHBoxLayout()
        self.drop_zone = DropZone("Drop a folder or CSV here")
        self.drop_zone.dropped.connect(lambda paths: self.load(paths[0]))
        row.addWidget(self.drop_zone, 1)
        buttons = QVBoxLayout()
        self.browse_button = QPushButton("Browse folder…")
        self.browse_button.clicked.connect(self._browse_folder)
        self.csv_button = QPushButton("Open CSV…")
        self.csv_button.clicked.connect(self._browse_csv)
        self.sample_button = QPushButton("Sample dataset (brain MRI)")
        self.sample_button.setToolTip("Br35H: 150 MRI slices with and 150 without a tumour")
        self.sample_button.clicked.connect(self.load_sample)
        for b in (self.browse_button, self.csv_button, self.sample_button):
            buttons.addWidget(b)
        row.addLayout(buttons)
        layout.addLayout(row)

        self.path_label = QLabel("No dataset yet.")
        self.path_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        layout.addWidget(self.path_label)
        layout.addWidget(self.progress)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.summary_label = QLabel("")
        self.summary_label.setWordWrap(True)
        left_layout.addWidget(self.summary_label)
        self.chart = pg.PlotWidget(background="w")
        self.chart.setMinimumHeight(160)
        self.chart.setMouseEnabled(False, False)
        self.chart.hideButtons()
        self.chart.getAxis("left").setLabel("images")
        left_layout.addWidget(self.chart, 2)
        self.imbalance_label = QLabel("")
        self.imbalance_label.setObjectName("warning")
        self.imbalance_label.setWordWrap(True)
        self.imbalance_label.setVisible(False)
        left_layout.addWidget(self.imbalance_label)
        self.problems_title = QLabel("Problems")
        left_layout.addWidget(self.problems_title)
        self.problems = QListWidget()
        left_layout.addWidget(self.problems, 1)
        splitter.addWidget(left)

        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        self.class_combo = QComboBox()
        self.class_combo.currentTextChanged.connect(self._load_thumbnails)
        right_layout.addWidget(self.class_combo)
        self.thumbs = QListWidget()
        self.thumbs.setViewMode(QListWidget.ViewMode.IconMode)
        self.thumbs.setIconSize(QSize(88, 88))
        self.thumbs.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.thumbs.setMovement(QListWidget.Movement.Static)
        self.thumbs.setSpacing(4)
        right_layout.addWidget(self.thumbs)
        splitter.addWidget(right)
        splitter.setSizes([420, 520])
        layout.addWidget(splitter, 1)

        split_row = QHBoxLayout()
        split_row.addWidget(QLabel("Validation share:"))
        self.val_spin = QDoubleSpinBox()
        self.val_spin.setRange(5, 50)
        self.val_spin.setSuffix(" %")
        self.val_spin.setValue(state.val_fraction * 100)
        self.val_spin.valueChanged.connect(self._split_changed)
        split_row.addWidget(self.val_spin)
        split_row.addWidget(QLabel("Seed:"))
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, 1_000_000)
        self.seed_spin.setValue(state.seed)
        self.seed_spin.valueChanged.connect(self._split_changed)
        split_row.addWidget(self.seed_spin)
        self.split_label = QLabel("")
        split_row.addWidget(self.split_label)
        self.groups_label = QLabel("")
        split_row.addWidget(self.groups_label, 1)
        layout.addLayout(split_row)

    # --- Page API ---------------------------------------------------------------------
    def blocker(self) -> str | None:
        if self.scanning:
            return "Scanning the dataset…"
        if self.state.index is None:
            return self.error or "Choose a folder or CSV of labeled images (or the sample)."
        return None

    def accepts_drops(self) -> bool:
        return True

    def drop_paths(self, paths) -> None:
        if paths:
            self.load(paths[0])

    # --- loading ----------------------------------------------------------------------
    def _browse_folder(self) -> None:
        start = str(settings().value("last_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder", start)
        if folder:
            self.load(Path(folder))

    def _browse_csv(self) -> None:
        start = str(settings().value("last_folder", str(Path.home())))
        file, _ = QFileDialog.getOpenFileName(self, "Dataset CSV", start, "CSV (*.csv *.tsv)")
        if file:
            self.load(Path(file))

    def load_sample(self) -> None:
        try:
            self.load(sample_dataset(), remember=False)
        except FileNotFoundError as exc:
            self._failed(str(exc))

    def load(self, path: Path, remember: bool = True) -> None:
        """Scan ``path`` off the GUI thread; the page fills in when the scan is done."""
        path = Path(path)
        if remember:
            settings().setValue("last_folder", str(path if path.is_dir() else path.parent))
        self.scanning, self.error = True, None
        self._clear_shown()  # nothing of the previous dataset stays on screen
        self.path_label.setText(f"Scanning {path} …")
        self.progress.setVisible(True)
        self.progress.setRange(0, 0)
        self.changed.emit()
        # Decoding to check each image also fills the cache for the chosen backbone, so
        # training does not decode again. The newest request wins: a slower earlier scan
        # stops at its next image and its answer is dropped.
        prep = self.state.spec.preprocessing().with_window(self.state.window)
        self._scan.start(
            lambda token, progress: scan(path, progress=progress, prep=prep,
                                         cache=ImageCache()),
            on_done=self._scanned, on_error=self._failed, on_progress=self._progress)

    def _progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, total)
        self.progress.setValue(done)

    def _failed(self, message: str) -> None:
        self.scanning, self.error = False, message
        self.progress.setVisible(False)
        self._clear_shown()
        self.path_label.setText(f"<b>Cannot use this dataset.</b> {message}")
        self.state.set_dataset(None)
        self.changed.emit()

    def _clear_shown(self) -> None:
        self._thumb_generation += 1  # thumbnails still decoding are dropped
        self.summary_label.setText("")
        self.chart.clear()
        self.chart.getAxis("bottom").setTicks(None)  # no class names of the old dataset
        self.chart.setYRange(0, 1)
        self.imbalance_label.setVisible(False)
        self.imbalance_label.setText("")
        self.problems.clear()
        self.problems_title.setText("Problems")
        self.groups_label.setText("")
        self.split_label.setText("")
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.blockSignals(False)
        self.thumbs.clear()

    def _scanned(self, index) -> None:
        self.scanning = False
        self.progress.setVisible(False)
        self.path_label.setText(f"<b>{index.root}</b> ({index.source})")
        self.state.set_dataset(index)
        self._show(index)
        self.changed.emit()

    # --- showing ----------------------------------------------------------------------
    def _show(self, index) -> None:
        counts = index.counts()
        skipped = len(index.unused())
        self.summary_label.setText(
            f"<b>{len(index.items)} images in {len(index.classes)} classes</b> — "
            + ", ".join(f"{name}: {n}" for name, n in counts.items())
            + (f" · {skipped} files or rows not used (listed below)" if skipped else ""))
        self.chart.clear()
        xs = list(range(len(counts)))
        self.bars = pg.BarGraphItem(x=xs, height=list(counts.values()), width=0.6,
                                    brush=pg.mkBrush(70, 130, 180))
        self.chart.addItem(self.bars)
        self.chart.getAxis("bottom").setTicks([list(zip(xs, counts.keys(), strict=True))])
        for x, n in zip(xs, counts.values(), strict=True):
            label = pg.TextItem(str(n), color=(30, 30, 30), anchor=(0.5, 1.0))
            label.setPos(x, n)
            self.chart.addItem(label)
        self.chart.setYRange(0, max(counts.values()) * 1.15)

        imbalance = [p for p in index.problems if p.kind == "imbalance"]
        self.imbalance_label.setVisible(bool(imbalance))
        self.imbalance_label.setText("⚠ " + imbalance[0].message if imbalance else "")
        self.problems.clear()
        for problem in index.problems:
            if problem.kind != "imbalance":
                self.problems.addItem(QListWidgetItem(str(problem)))
        self.problems_title.setText(f"Problems ({self.problems.count()})"
                                    if self.problems.count() else "Problems: none found")
        groups = {item.group for item in index.items if item.group is not None}
        self.groups_label.setText(
            f"Groups from the CSV: {len(groups)} — a group never straddles training and "
            "validation" if groups else "")
        self._show_split()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(index.classes)
        self.class_combo.blockSignals(False)
        self._load_thumbnails(index.classes[0])

    def _split_changed(self) -> None:
        self.state.set_split(self.val_spin.value() / 100.0, self.seed_spin.value())
        self._show_split()

    def _show_split(self) -> None:
        """The split the trainer will use (same call, same seed): sizes of each part."""
        index = self.state.index
        if index is None:
            self.split_label.setText("")
            return
        try:
            split = make_split(index, self.state.val_fraction, seed=self.state.seed)
        except DatasetError as exc:
            self.split_label.setText(f"⚠ {exc}")
            return
        self.split_label.setText(
            f"→ {len(split.train)} for training, {len(split.val)} for validation")

    def _load_thumbnails(self, label: str) -> None:
        """Thumbnails of one class, decoded in chunks off the GUI thread."""
        self._thumb_generation += 1
        self.thumbs.clear()
        index = self.state.index
        if index is None or not label:
            return
        paths = [item.path for item in index.items if item.label == label][:THUMBS_PER_CLASS]
        self._next_chunk(self._thumb_generation, paths, 0)

    def _next_chunk(self, generation: int, paths: list[Path], start: int) -> None:
        if generation != self._thumb_generation or start >= len(paths):
            return
        chunk = paths[start : start + THUMB_CHUNK]

        def work():
            return [(p, thumbnail(p)) for p in chunk]

        def done(result):
            if generation != self._thumb_generation:
                return
            for path, image in result:
                item = QListWidgetItem(QIcon(QPixmap.fromImage(image)), path.name)
                item.setToolTip(str(path))
                self.thumbs.addItem(item)
            self._next_chunk(generation, paths, start + THUMB_CHUNK)

        run_task(work, on_done=done, parent=self)
