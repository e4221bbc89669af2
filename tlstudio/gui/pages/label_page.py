"""Step 1, Label: from a folder of unlabeled images (DICOM included) to a labeled dataset,
with the model asking for the images it would learn most from; and the review of labels
that look wrong (the Review tab).

Labels live in tlstudio's own folder (core ``data.labels``), saved on every key press; the
folder's frozen features are computed once in the background, and after each label a probe
on them (``studies.active_learning``, also ``tlstudio suggest``) proposes the next images and
guesses their class. One key per class labels; Enter accepts the guess; Backspace undoes;
Space skips. The GUI thread only paints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QIcon, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ...core.data.labels import KEYS, LabelError, LabelProject
from ...core.studies.active_learning import MIN_PER_CLASS, FolderFeatures
from ...core.words import count
from ..review_view import ReviewView
from ..state import settings
from ..widgets import PlotNote, add_window_choices, hint, thumbnail, title
from ..workers import LatestTask
from .base import Page

VIEW = 512  # the viewer's picture at zoom 1
STRIP = 12  # images in the filmstrip
STRIP_ICON = 60


class LabelPage(Page):
    title = "Label"
    use_labels = Signal(object)  # the project's labels.csv: load it on the Data step

    def __init__(self, state, parent=None):
        super().__init__(state, parent)
        self.project: LabelProject | None = None
        self.features: FolderFeatures | None = None
        self.queue: list[Path] = []  # the next images, the current one first
        self.guesses: dict[str, str] = {}  # image -> the model's guess
        self.zoom = 1.0
        self._image = None  # the current QImage at full viewer size
        self._features_task = LatestTask(self)
        self._model_task = LatestTask(self)
        self._view_task = LatestTask(self)
        self._strip_task = LatestTask(self)

        layout = QVBoxLayout(self)
        layout.addWidget(title("Label images"))
        layout.addWidget(hint(
            "Open a folder of unlabeled images, name the classes, press one key per class. "
            "The model soon asks for the images it would learn most from and guesses (Enter "
            "accepts). Saved as you go, in tlstudio's folder, never in yours."))
        top = QHBoxLayout()
        self.open_button = QPushButton("Open a folder…")
        self.open_button.clicked.connect(self._browse)
        self.folder_label = QLabel("No folder open.")
        self.folder_label.setWordWrap(True)
        self.import_button = QPushButton("Import labels…")
        self.import_button.setToolTip("A partly labeled folder: take the labels of a "
                                      "path,label CSV for this folder's images")
        self.import_button.clicked.connect(self._import)
        top.addWidget(self.open_button)
        top.addWidget(self.import_button)
        top.addWidget(self.folder_label, 1)
        top.addWidget(QLabel("Window:"))
        self.window_combo = QComboBox()
        add_window_choices(self.window_combo)
        self.window_combo.setToolTip("For DICOM and 16-bit images: which range of values "
                                     "becomes black to white while you label")
        self.window_combo.activated.connect(lambda _i: self._show_current())
        self.window_combo.setSizeAdjustPolicy(  # long preset names must not widen the window
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.window_combo.setMinimumContentsLength(8)
        top.addWidget(self.window_combo)
        layout.addLayout(top)

        classes = QHBoxLayout()
        classes.addWidget(QLabel("Classes:"))
        self.class_edit = QLineEdit()
        self.class_edit.setPlaceholderText("a class name, then Enter")
        self.class_edit.setMaximumWidth(220)
        self.class_edit.returnPressed.connect(self._add_class)
        classes.addWidget(self.class_edit)
        self.classes_label = QLabel("")
        self.classes_label.setObjectName("classes")
        self.classes_label.setWordWrap(True)
        classes.addWidget(self.classes_label, 1)
        layout.addLayout(classes)

        self.tabs = QTabWidget()
        self.tabs.addTab(self._labeling_tab(), "Label")
        self.review = ReviewView(state)
        self.review.decided.connect(self._review_decided)
        self.review.use_labels.connect(self.use_labels)
        self.tabs.addTab(self.review, "Review labels")
        layout.addWidget(self.tabs, 1)

        bottom = QHBoxLayout()
        self.status = QLabel("")
        self.status.setWordWrap(True)
        bottom.addWidget(self.status, 1)
        self.export_button = QPushButton("Export labels as CSV…")
        self.export_button.clicked.connect(self._export)
        self.use_button = QPushButton("Train on these labels →")
        self.use_button.setObjectName("primary")
        self.use_button.setToolTip("Open these labels on the Data step: the steps after it "
                                   "train on them like any dataset")
        self.use_button.clicked.connect(self._use)
        bottom.addWidget(self.export_button)
        bottom.addWidget(self.use_button)
        layout.addLayout(bottom)
        self._keys()
        self._refresh()

    # --- layout -------------------------------------------------------------------------
    def _labeling_tab(self) -> QWidget:
        tab = QWidget()
        outer = QVBoxLayout(tab)
        split = QSplitter()
        self.scroll = QScrollArea()
        self.scroll.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.viewer = QLabel("Open a folder to start.")
        self.viewer.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.viewer.setMinimumSize(160, 160)
        self.scroll.setWidget(self.viewer)
        self.scroll.setWidgetResizable(True)
        split.addWidget(self.scroll)

        side = QWidget()
        side_layout = QVBoxLayout(side)
        self.image_label = QLabel("")
        self.image_label.setWordWrap(True)
        self.guess_label = QLabel("")
        self.guess_label.setObjectName("guess")
        self.guess_label.setWordWrap(True)
        self.keys_label = QLabel("")
        self.keys_label.setWordWrap(True)
        buttons = QHBoxLayout()
        self.undo_button = QPushButton("Undo (Backspace)")
        self.undo_button.clicked.connect(self.undo)
        self.skip_button = QPushButton("Skip (Space)")
        self.skip_button.clicked.connect(self.skip)
        buttons.addWidget(self.undo_button)
        buttons.addWidget(self.skip_button)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.curve = pg.PlotWidget(background="w", title="Accuracy against labels")
        self.curve.setLabel("bottom", "labels trained on")
        self.curve.setLabel("left", "accuracy (cross-validated)")
        self.curve.setYRange(0, 1)
        self.curve.setMinimumHeight(120)
        self.curve_note = PlotNote(self.curve, "no data yet: the curve shows once a few "
                                               "labels of each class can be checked")
        self.curve.setToolTip(
            "Accuracy of the quick model on labels it did not train on, for growing numbers "
            "of labels: when the curve flattens, more labels stop paying. The images the "
            "model asked for are the hard ones, so this tends to understate the accuracy a "
            "full training reaches.")
        for widget in (self.image_label, self.guess_label, self.keys_label):
            side_layout.addWidget(widget)
        side_layout.addLayout(buttons)
        side_layout.addWidget(self.model_label)
        side_layout.addWidget(self.curve, 1)
        split.addWidget(side)
        split.setSizes([620, 360])
        outer.addWidget(split, 1)

        self.strip = QListWidget()
        self.strip.setViewMode(QListWidget.ViewMode.IconMode)
        self.strip.setFlow(QListWidget.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setIconSize(QSize(STRIP_ICON, STRIP_ICON))
        self.strip.setFixedHeight(STRIP_ICON + 36)
        self.strip.setToolTip("The next images to label, the current one first; click one "
                              "to label it now")
        self.strip.itemClicked.connect(self._strip_clicked)
        outer.addWidget(self.strip)
        return tab

    def _keys(self) -> None:
        """The page itself takes the labeling keys: buttons, filmstrip and viewer never hold
        the focus (Space would press a button), and a text field keeps its own keys."""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        for widget in (self.undo_button, self.skip_button, self.strip, self.scroll,
                       self.viewer, self.use_button, self.export_button, self.open_button,
                       self.import_button, self.tabs.tabBar()):
            widget.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.class_edit.returnPressed.connect(  # back to labeling, after this key is done
            lambda: QTimer.singleShot(0, self.setFocus))

    def keyPressEvent(self, event):  # noqa: N802 (Qt override)
        if isinstance(QApplication.focusWidget(), (QLineEdit, QComboBox)) \
                or not self._labeling():
            super().keyPressEvent(event)
            return
        key, text = event.key(), event.text()
        if text and text in KEYS:
            self.label_with(KEYS.index(text))
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.accept_guess()
        elif key == Qt.Key.Key_Backspace or event.matches(QKeySequence.StandardKey.Undo):
            self.undo()
        elif key == Qt.Key.Key_Space:
            self.skip()
        elif text in ("+", "="):
            self._zoom(1.25)
        elif text == "-":
            self._zoom(0.8)
        elif text == "0":
            self._zoom(None)
        else:
            super().keyPressEvent(event)

    # --- the project --------------------------------------------------------------------
    def _browse(self) -> None:
        start = str(settings().value("last_folder", str(Path.home())))
        folder = QFileDialog.getExistingDirectory(self, "Folder of images to label", start)
        if folder:
            self.open_folder(Path(folder))

    def open_folder(self, folder: Path) -> None:
        """Open (or go on with) the label project of ``folder``."""
        try:
            self.project = LabelProject.for_folder(folder)
        except LabelError as exc:
            self.status.setText(str(exc))
            return
        for task in (self._model_task, self._view_task, self._strip_task):
            task.cancel()  # an answer about the previous folder is never shown
        self.features, self.guesses = None, {}
        self.queue = self.project.unlabeled()
        self.folder_label.setText(f"{folder} — {len(self.queue)} to label, "
                                  f"{len(self.project.labels)} labeled")
        self._refresh()
        self._show_current()
        self._compute_features()

    def _import(self) -> None:
        start = str(settings().value("last_folder", str(Path.home())))
        file, _ = QFileDialog.getOpenFileName(self, "Labels CSV", start, "CSV (*.csv *.tsv)")
        if file:
            self.import_labels(Path(file))

    def import_labels(self, csv_file: Path) -> None:
        try:
            taken, outside = self.project.import_csv(csv_file)
        except (LabelError, OSError, ValueError) as exc:
            self.status.setText(f"Cannot import {csv_file}: {exc}")
            return
        done = set(self.project.labels)
        self.queue = [p for p in self.queue if str(p) not in done]
        self.status.setText(f"{count(taken, 'label')} imported from {csv_file.name}"
                            + (f"; {count(outside, 'row')} name"
                               + ("s" if outside == 1 else "")
                               + " images outside this folder and were not used"
                               if outside else ""))
        self._after_change()

    def _add_class(self) -> None:
        name = self.class_edit.text().strip()
        if self.project is None:
            self.status.setText("Open a folder first.")
            return
        if len(self.project.classes) >= len(KEYS):
            self.status.setText(f"At most {len(KEYS)} classes can be labeled with keys.")
            return
        try:
            self.project.add_class(name)
        except LabelError as exc:
            self.status.setText(str(exc))
            return
        self.class_edit.clear()
        self._refresh()

    def _compute_features(self) -> None:
        project, backbone, window = self.project, self.state.spec.name, self.state.window
        files = project.unlabeled() + [Path(p) for p in project.labels]
        self.model_label.setText("Reading the images' features (once per folder)…")

        def work(token, progress):
            from ...core.engine.events import StageProgress

            def emit(event):
                if isinstance(event, StageProgress):
                    progress(event.done, event.total)
            return FolderFeatures.compute(sorted(files), backbone, "auto", window, emit)

        self._features_task.start(work, self._features_ready,
                                  on_error=lambda m: self.model_label.setText(
                                      f"The model cannot help: {m}"),
                                  on_progress=lambda d, t: self.model_label.setText(
                                      f"Reading the images' features: {d}/{t}"))

    def _features_ready(self, features: FolderFeatures) -> None:
        self.features = features
        if features.unreadable:
            self.status.setText(f"{count(len(features.unreadable), 'file')} cannot be read as "
                                f"images and are not offered, e.g. {features.unreadable[0]}")
        self._update_model()

    def _update_model(self) -> None:
        """Refit the probe on the labels so far (background) and take its proposals."""
        if self.features is None or self.project is None:
            return
        features, labels = self.features, dict(self.project.labels)
        classes, excluded = list(self.project.classes), set(self.project.excluded)
        labels = {k: v for k, v in labels.items() if k not in excluded}

        curve_due = len(labels) < 40 or len(labels) % 10 == 0  # the curve costs 30 fits

        def work(token):
            model = features.model(labels, classes)
            token.check()  # a newer label came: this answer would be dropped anyway
            rows = features.suggestions(labels, classes, STRIP, model=model)
            token.check()
            return model.ready, rows, model.learning_curve() if curve_due else None, model

        self._model_task.start(work, self._model_ready)

    def _model_ready(self, result) -> None:
        ready, rows, curve, model = result
        done = set(self.project.labels) | set(self.project.excluded)
        rows = [r for r in rows if r["path"] not in done]
        current = self.queue[0] if self.queue else None
        proposed = [Path(r["path"]) for r in rows]
        rest = [p for p in self.queue if p not in proposed and p != current]
        self.queue = ([current] if current is not None else []) + \
            [p for p in proposed if p != current] + rest
        self.guesses = {r["path"]: r["suggested_label"] for r in rows if r["suggested_label"]}
        if ready and current is not None and str(current) not in self.guesses:
            position = {str(p): k for k, p in enumerate(self.features.paths)}
            if str(current) in position:
                probs = model.probabilities([position[str(current)]])[0]
                self.guesses[str(current)] = self.project.classes[int(np.argmax(probs))]
        if ready:
            self.model_label.setText("Next: the images the model is least sure of.")
            self.model_label.setToolTip("A quick model on the labels so far proposes the "
                                        "images it is least sure of, spread over the folder, "
                                        "and guesses their class")
        else:
            self.model_label.setText(
                f"Label {MIN_PER_CLASS} images in each of two classes: then the model "
                "proposes the next ones and guesses. Until then, images that cover the "
                "folder come first.")
        if curve is None:  # not recomputed for this label: the last one stays
            self._show_current()
            return
        self.curve.clear()
        self.curve_note.show_when(not curve)
        if curve:
            xs, ys = [c[0] for c in curve], [c[1] for c in curve]
            self.curve.plot(xs, ys, pen=pg.mkPen((31, 119, 180), width=2), symbol="o")
            self.curve.setYRange(0, 1)
        self._show_current()

    # --- labeling -----------------------------------------------------------------------
    def current(self) -> Path | None:
        return self.queue[0] if self.queue else None

    def _labeling(self) -> bool:
        """Keys label only on the Label tab, with a folder open."""
        return self.project is not None and self.tabs.currentIndex() == 0

    def label_with(self, class_position: int) -> None:
        if not self._labeling():
            return
        if class_position >= len(self.project.classes):
            self.status.setText(f"No class on key {KEYS[class_position]}: add classes above.")
            return
        self._label(self.project.classes[class_position])

    def accept_guess(self) -> None:
        if not self._labeling():
            return
        image = self.current()
        if image is not None and str(image) in self.guesses:
            self._label(self.guesses[str(image)])

    def _label(self, label: str) -> None:
        image = self.current()
        if image is None:
            return
        self.project.set_label(image, label)
        self.queue.pop(0)
        self.status.setText(f"{image.name}: {label} (saved)")
        self._after_change()

    def undo(self) -> None:
        if not self._labeling():
            return
        back = self.project.undo()
        if back is not None:
            self.queue.insert(0, Path(back))
            self.status.setText(f"{Path(back).name}: label taken back")
            self._after_change()

    def skip(self) -> None:
        if self._labeling() and len(self.queue) > 1:
            self.queue.append(self.queue.pop(0))
            self._show_current()

    def _after_change(self) -> None:
        self._refresh()
        self._show_current()
        self._update_model()
        self.changed.emit()

    def _strip_clicked(self, item: QListWidgetItem) -> None:
        path = Path(item.data(Qt.ItemDataRole.UserRole))
        if path in self.queue:
            self.queue.remove(path)
            self.queue.insert(0, path)
            self._show_current()

    # --- showing ------------------------------------------------------------------------
    def _refresh(self) -> None:
        has = self.project is not None
        for widget in (self.class_edit, self.undo_button, self.skip_button,
                       self.export_button, self.import_button):
            widget.setEnabled(has)
        if not has:
            self.classes_label.setText("")
            self.use_button.setEnabled(False)
            return
        counts = self.project.counts()
        self.classes_label.setText("   ".join(
            f"<b>{KEYS[i]}</b> {name} ({counts[name]})"
            for i, name in enumerate(self.project.classes)) or "add at least two classes")
        self.keys_label.setText(
            "Keys: " + ", ".join(f"{KEYS[i]} {name}" for i, name in
                                 enumerate(self.project.classes))
            + " · Enter: the guess" if self.project.classes
            else "Add the classes above (Enter after each name).")
        self.keys_label.setToolTip("1-9 label, Enter accepts the model's guess, Backspace "
                                   "undoes, Space skips, + / - / 0 zoom (scroll to pan)")
        why = self.project.ready()
        self.use_button.setEnabled(why is None)
        self.review.labels_csv = self.project.csv_path if why is None else None
        self.use_button.setToolTip(why or "Open these labels on the Data step")
        self.folder_label.setText(
            f"{self.project.images_dir} — {len(self.queue)} to label, "
            f"{sum(counts.values())} labeled (saved in {self.project.csv_path})")

    def _show_current(self) -> None:
        image = self.current()
        if image is None:
            self.viewer.setText("Every image is labeled." if self.project else
                                "Open a folder to start.")
            self.image_label.setText("")
            self.guess_label.setText("")
            self._fill_strip()
            return
        guess = self.guesses.get(str(image))
        self.image_label.setText(f"<b>{image.name}</b><br>{image.parent}")
        self.guess_label.setText(f"Model's guess: <b>{guess}</b> (Enter accepts)" if guess
                                 else "")
        window = self.window_combo.currentData()

        def work(token):
            return image, thumbnail(image, VIEW, window)

        self._view_task.start(work, self._picture,
                              on_error=lambda m: self.viewer.setText(f"Cannot show: {m}"))
        self._fill_strip()

    def _picture(self, result) -> None:
        image, picture = result
        if image != self.current():
            return
        self._image = picture
        self._apply_zoom()

    def _zoom(self, factor: float | None) -> None:
        self.zoom = 1.0 if factor is None else min(8.0, max(0.25, self.zoom * factor))
        self._apply_zoom()

    def _apply_zoom(self) -> None:
        if self._image is None:
            return
        pixmap = QPixmap.fromImage(self._image)
        if self.zoom != 1.0:
            pixmap = pixmap.scaled(pixmap.size() * self.zoom,
                                   Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
        self.viewer.setPixmap(pixmap)

    def _fill_strip(self) -> None:
        shown = self.queue[:STRIP]
        self.strip.clear()
        for path in shown:
            item = QListWidgetItem(path.name[:14])
            item.setData(Qt.ItemDataRole.UserRole, str(path))
            guess = self.guesses.get(str(path))
            item.setToolTip(f"{path}" + (f"\nguess: {guess}" if guess else ""))
            self.strip.addItem(item)
        if shown:
            self.strip.setCurrentRow(0)
        window = self.window_combo.currentData()

        def work(token):
            out = []
            for path in shown:
                token.check()
                try:
                    out.append((str(path), thumbnail(path, STRIP_ICON, window)))
                except Exception:  # noqa: BLE001 - an unreadable file keeps its name only
                    out.append((str(path), None))
            return out

        self._strip_task.start(work, self._strip_icons)

    def _strip_icons(self, icons) -> None:
        for row, (path, image) in enumerate(icons):
            item = self.strip.item(row)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == path and image:
                item.setIcon(QIcon(QPixmap.fromImage(image)))

    # --- out ----------------------------------------------------------------------------
    def _export(self) -> None:
        target, _ = QFileDialog.getSaveFileName(self, "Export labels", "labels.csv",
                                                "CSV (*.csv)")
        if target:
            try:
                self.project.export(target)
            except OSError as exc:
                QMessageBox.warning(self, "Export labels", f"Cannot write {target}: {exc}")
                return
            self.status.setText(f"Labels written to {target}")

    def _use(self) -> None:
        if self.project is not None and self.project.ready() is None:
            self.use_labels.emit(self.project.csv_path)

    def _review_decided(self, message: str) -> None:
        self.status.setText(message)
        if self.project is not None:
            self.project = LabelProject.open(self.project.dir)
            self._refresh()

    def on_enter(self) -> None:
        self.review.on_enter()
        self.setFocus()
