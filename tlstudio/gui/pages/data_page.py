"""Step 2, Data: choose a folder or CSV, see classes, thumbnails, problems and the split."""

from __future__ import annotations

from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QIcon, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
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
from ...core.data.images import ImageReadError
from ...core.data.samples import sample_dataset
from ...core.data.split import make_split
from ...core.words import count
from ...pixels import parse_image_key
from ..state import settings
from ..widgets import (
    DropZone,
    Pager,
    add_window_choices,
    explained,
    hint,
    image_facts,
    thumbnail,
    title,
)
from ..workers import LatestTask, run_task
from .base import Page

THUMBS_PER_PAGE = 48  # a page of one class; Previous/Next reach the others


def dicom_group(group: str | None) -> bool:
    """Groups made from DICOM PatientID / StudyInstanceUID (hashed, see pixels.dicom)."""
    return bool(group) and group.startswith(("patient-", "study-"))


PREVIEW = 200
THUMB_CHUNK = 12


class DataPage(Page):
    title = "Data"

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.scanning = False
        self.error: str | None = None
        self._scan = LatestTask(self)
        self._thumb_generation = 0
        self._class_items: list = []  # the class shown, every image (a page at a time)
        self.large_image = None  # the last image opened large

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
        self.problems_title.setWordWrap(True)
        left_layout.addWidget(self.problems_title)
        self.problems = QListWidget()
        # each reason wrapped to the list's width: read without scrolling sideways
        self.problems.setWordWrap(True)
        self.problems.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.problems.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.problems.setTextElideMode(Qt.TextElideMode.ElideNone)
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
        self.thumbs.currentItemChanged.connect(self._preview_selected)
        self.thumbs.setToolTip("Double-click an image to see it large")
        self.thumbs.itemActivated.connect(self._open_item)
        right_layout.addWidget(self.thumbs, 1)
        self.pager = Pager(THUMBS_PER_PAGE)
        self.pager.changed.connect(self._show_thumbnail_page)
        right_layout.addWidget(self.pager)
        preview_row = QHBoxLayout()
        self.preview = QLabel("Select an image to see it as the model will, with its "
                              "header facts.")
        self.preview.setObjectName("preview")
        self.preview.setWordWrap(True)
        self.preview.setFixedSize(PREVIEW, PREVIEW)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.facts_label = QLabel("")
        self.facts_label.setWordWrap(True)
        self.facts_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.facts_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        preview_row.addWidget(self.preview)
        preview_row.addWidget(self.facts_label, 1)
        right_layout.addLayout(preview_row)
        self._preview_task = LatestTask(self)
        self._reselect: str | None = None
        splitter.addWidget(right)
        splitter.setSizes([420, 520])
        layout.addWidget(splitter, 1)
        layout.addLayout(self._window_controls())  # full width: the window's minimum stays small

        split_row = QHBoxLayout()
        self.val_spin = QDoubleSpinBox()
        split_row.addWidget(explained("Validation:", "validation_share", self.val_spin))
        self.val_spin.setRange(5, 50)
        self.val_spin.setSuffix(" %")
        self.val_spin.setDecimals(1)
        self.val_spin.setValue(state.val_fraction * 100)
        self.val_spin.valueChanged.connect(self._split_changed)
        split_row.addWidget(self.val_spin)
        self.test_spin = QDoubleSpinBox()
        self.test_spin.setRange(0, 50)
        self.test_spin.setSuffix(" %")
        self.test_spin.setDecimals(1)
        split_row.addWidget(explained("Test (held out):", "test_share", self.test_spin))
        self.test_spin.setValue(state.test_fraction * 100)
        self.test_spin.valueChanged.connect(self._split_changed)
        split_row.addWidget(self.test_spin)
        self.seed_spin = QSpinBox()
        split_row.addWidget(explained("Seed:", "seed", self.seed_spin))
        self.seed_spin.setRange(0, 1_000_000)
        self.seed_spin.setMaximumWidth(90)
        self.seed_spin.setValue(state.seed)
        self.seed_spin.valueChanged.connect(self._split_changed)
        split_row.addWidget(self.seed_spin)
        split_row.addStretch(1)
        layout.addLayout(split_row)
        sizes_row = QHBoxLayout()  # a row of its own: long texts never widen the window
        self.split_label = QLabel("")
        self.split_label.setWordWrap(True)
        sizes_row.addWidget(self.split_label, 1)
        self.groups_label = QLabel("")
        self.groups_label.setWordWrap(True)
        sizes_row.addWidget(self.groups_label, 1)
        layout.addLayout(sizes_row)

    def _window_controls(self) -> QHBoxLayout:
        """Window for DICOM and 16-bit images: stored, automatic, a CT preset, or custom."""
        row = QHBoxLayout()
        label = QLabel("Window:")
        label.setToolTip("For DICOM and 16-bit images: which range of values becomes black "
                         "to white")
        row.addWidget(label)
        self.window_combo = QComboBox()
        add_window_choices(self.window_combo)
        self.window_combo.addItem("CT brain + subdural + bone (3 channels)",
                                  "brain+subdural+bone")
        self.window_combo.addItem("custom centre / width", "custom")
        self.window_combo.setToolTip(
            "Which range of values becomes black to white. Recorded with the run and used "
            "the same way by Predict and the exported model.")
        self.window_combo.activated.connect(self._window_chosen)
        self.window_combo.setSizeAdjustPolicy(  # long preset names must not widen the window
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.window_combo.setMinimumContentsLength(10)
        row.addWidget(self.window_combo, 1)
        self.centre_spin, self.width_spin = QDoubleSpinBox(), QDoubleSpinBox()
        for spin, label, low, value in ((self.centre_spin, "C", -5000.0, 40.0),
                                        (self.width_spin, "W", 1.0, 80.0)):
            spin.setRange(low, 70000.0)
            spin.setDecimals(0)
            spin.setValue(value)
            spin.setEnabled(False)
            spin.setMaximumWidth(90)
            spin.editingFinished.connect(self._window_chosen)
            row.addWidget(QLabel(label))
            row.addWidget(spin)
        self.all_frames = QCheckBox("every frame")
        self.all_frames.setToolTip("Multi-frame DICOM: take every frame as an image of its own "
                                   "(frames of one file stay in one part of the split); "
                                   "otherwise the middle frame")
        self.all_frames.toggled.connect(self._frames_chosen)
        row.addWidget(self.all_frames)
        return row

    def _frames_chosen(self, every: bool) -> None:
        self.state.set_frames("all" if every else "middle")
        if self.state.index is not None and not self.scanning:
            self.load(self.state.index.root, remember=False)

    def window_text(self) -> str:
        choice = self.window_combo.currentData()
        if choice == "custom":
            return f"{self.centre_spin.value():g},{self.width_spin.value():g}"
        return choice

    def _window_chosen(self, *_args) -> None:
        """A new window: the dataset is checked again with it (an image may not suit it, and
        the cache is filled for it) and thumbnails show what the model will see."""
        custom = self.window_combo.currentData() == "custom"
        self.centre_spin.setEnabled(custom)
        self.width_spin.setEnabled(custom)
        window = self.window_text()
        if window == self.state.window:
            return
        self.state.set_window(window)
        if self.state.index is not None and not self.scanning:
            self._reselect = self._selected_path()
            self.load(self.state.index.root, remember=False)

    def _selected_path(self) -> str | None:
        item = self.thumbs.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def _preview_selected(self, *_args) -> None:
        item = self.thumbs.currentItem()
        if item is None:
            return
        path, frame = parse_image_key(item.data(Qt.ItemDataRole.UserRole))
        window = self.state.window

        def work(token):
            token.check()
            return path, thumbnail(path, PREVIEW, window, frame), image_facts(path)

        self._preview_task.start(work, on_done=self._show_preview,
                                 on_error=lambda message: self._show_preview_error(message))

    def _show_preview(self, result) -> None:
        path, image, facts = result
        self.preview.setPixmap(QPixmap.fromImage(image))
        lines = [f"<b>{path.name}</b>"] + [f"{k}: {v}" for k, v in facts.items()]
        lines.append(f"shown with window: {self.window_combo.currentText()}"
                     if self.window_combo.currentData() != "custom"
                     else f"shown with window: {self.window_text()}")
        self.facts_label.setText("<br>".join(lines))

    def _show_preview_error(self, message: str) -> None:
        self.preview.setText("Cannot show this image.")
        self.facts_label.setText(message)

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
        prep = self.state.spec.preprocessing().with_window(self.state.window, self.state.frames)
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
        self._class_items = []  # Next must not page through the old dataset's images
        self.pager.reset(0)
        self._preview_task.cancel()
        self.preview.clear()
        self.facts_label.setText("")

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
            + (f" · {count(skipped, 'file or row', 'files or rows')} not used (listed below)"
               if skipped else ""))
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
                item = QListWidgetItem(str(problem))
                item.setToolTip(str(problem))
                self.problems.addItem(item)
        self.problems_title.setText(f"Problems ({self.problems.count()})"
                                    if self.problems.count() else "Problems: none found")
        if index.has_groups:
            per_class = index.groups_per_class()
            what = "Patients" if any(dicom_group(i.group) for i in index.items) else "Groups"
            self.groups_label.setText(
                f"{what} per class: " + ", ".join(f"{c} {n}" for c, n in per_class.items())
                + " — grouping is active: no patient in two parts")
        else:
            self.groups_label.setText("")
        self._show_split()
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(index.classes)
        self.class_combo.blockSignals(False)
        self._load_thumbnails(index.classes[0])

    def _split_changed(self) -> None:
        self.state.set_split(self.val_spin.value() / 100.0, self.seed_spin.value(),
                             self.test_spin.value() / 100.0)
        self._show_split()

    def _show_split(self) -> None:
        """The split the trainer will use (same call, same seed): sizes of each part."""
        index = self.state.index
        if index is None:
            self.split_label.setText("")
            return
        try:
            split = make_split(index, self.state.val_fraction, self.state.test_fraction,
                               seed=self.state.seed)
        except DatasetError as exc:
            self.split_label.setText(f"⚠ {exc}")
            return
        text = f"→ {len(split.train)} for training, {len(split.val)} for validation"
        if split.test:
            text += f", {len(split.test)} held out for the test"
        self.split_label.setText(text)

    def _load_thumbnails(self, label: str) -> None:
        """Thumbnails of one class, decoded in chunks off the GUI thread."""
        index = self.state.index
        self._class_items = ([item for item in index.items if item.label == label]
                             if index is not None and label else [])
        self.pager.noun = f"'{label}' images"
        self.pager.reset(len(self._class_items))
        self._show_thumbnail_page()

    def _show_thumbnail_page(self) -> None:
        self._thumb_generation += 1
        self.thumbs.clear()
        start, end = self.pager.page_range()
        self._next_chunk(self._thumb_generation, self._class_items[start:end], 0)

    def _open_item(self, item) -> None:
        """Double-click: the image large, in the window chosen for the data."""
        from ..image_view import LargeImageDialog, discard

        discard(self.large_image)
        dialog = LargeImageDialog(item.data(Qt.ItemDataRole.UserRole), self.state.window,
                                  parent=self)
        dialog.show()
        self.large_image = dialog

    def _next_chunk(self, generation: int, paths: list, start: int) -> None:
        if generation != self._thumb_generation or start >= len(paths):
            return
        chunk = paths[start : start + THUMB_CHUNK]

        window = self.state.window

        def work():
            out = []
            for item in chunk:
                try:
                    out.append((item, thumbnail(item.path, 96, window, item.frame), None))
                except ImageReadError as exc:
                    out.append((item, None, str(exc)))
            return out

        def done(result):
            if generation != self._thumb_generation:
                return
            for entry, image, error in result:
                icon = QIcon(QPixmap.fromImage(image)) if image is not None else QIcon()
                name = entry.path.name + (f" #{entry.frame}" if entry.frame is not None else "")
                item = QListWidgetItem(icon, name)
                item.setToolTip(entry.key if error is None else f"{entry.key}: {error}")
                item.setData(Qt.ItemDataRole.UserRole, entry.key)
                self.thumbs.addItem(item)
                if entry.key == self._reselect:
                    self.thumbs.setCurrentItem(item)
            if self.thumbs.currentItem() is None and self.thumbs.count():
                self.thumbs.setCurrentRow(0)  # the preview shows one image from the start
            self._next_chunk(generation, paths, start + THUMB_CHUNK)

        run_task(work, on_done=done, parent=self)
